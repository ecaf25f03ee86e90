"""VLEncoder's contract: registry, Matryoshka rules, batching with OOM halving, info, licenses, threads."""

from __future__ import annotations

import re
import sys
import threading
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import pagesight.models
from pagesight.errors import ConfigurationError
from pagesight.models import VLEncoder, dense_vl, vl
from pagesight.models.registry import DENSE_VL, DENSE_VL_TEXT_MODELS, REGISTRY, resolve_dense_vl

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_embed_vl"))

from vl_builders import build_standin_embed_vl  # noqa: E402

HIDDEN = 16
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_standin_embed_vl(tmp_path_factory.mktemp("embed-vl") / "standin-embed-vl", hidden=HIDDEN)


@pytest.fixture(scope="module")
def reference(standin_dir: Path) -> VLEncoder:
    return VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu").load()


# -- registry -------------------------------------------------------------------------------------


def test_every_entry_states_license_dimensions_and_backend() -> None:
    assert {
        "llama-nemotron-embed-vl-1b-v2",
        "llama-3.2-nemoretriever-1b-vlm-embed-v1",
        "clip-vit-b-32",
        "siglip-base-patch16-224",
        "nomic-embed-vision-v1.5",
        "nv-embed-v2",
        "e5-v",
    } <= set(DENSE_VL)
    for alias, spec in DENSE_VL.items():
        assert spec.alias == alias and spec.kind == "dense-vl"
        assert isinstance(spec.dimensions, int) and spec.dimensions > 0
        assert spec.backend in ("nvidia", "sentence-transformers", "nv-embed", "e5-v")
        assert spec.hf_id is not None and "/" in spec.hf_id
        assert spec.revision is None or _HEX40.match(spec.revision)
        if alias != "e5-v":  # E5-V's card states no license: recorded as unknown, not guessed
            assert spec.license and spec.commercial_use is not None
    assert DENSE_VL["e5-v"].license is None and DENSE_VL["e5-v"].commercial_use is None


def test_pinned_facts() -> None:
    embed = DENSE_VL["llama-nemotron-embed-vl-1b-v2"]
    assert (embed.hf_id, embed.revision, embed.dimensions) == (
        "nvidia/llama-nemotron-embed-vl-1b-v2",
        "582e3bf72aee355e3c59ed89de53543c5b0657ee",
        2048,
    )
    assert embed.license == "NVIDIA Open Model License" and embed.commercial_use is True
    assert embed.requires_remote_code and embed.max_tokens == 10240
    nv = DENSE_VL["nv-embed-v2"]
    assert (nv.revision, nv.dimensions, nv.license, nv.commercial_use, nv.max_tokens) == (
        "7604d305b621f14095a1aa23d351674c2859553a",
        4096,
        "CC-BY-NC-4.0",
        False,
        32768,
    )
    assert DENSE_VL["e5-v"].revision == "0c1f22679417b3ae925d779442221c40cd1861ab"
    assert DENSE_VL["clip-vit-b-32"].dimensions == 512 and DENSE_VL["clip-vit-b-32"].license == "MIT"
    assert DENSE_VL["siglip-base-patch16-224"].license == "Apache-2.0"
    assert DENSE_VL_TEXT_MODELS["nomic-embed-vision-v1.5"] in REGISTRY


def test_resolve_dense_vl() -> None:
    assert resolve_dense_vl("CLIP-ViT-B-32") is DENSE_VL["clip-vit-b-32"]
    assert resolve_dense_vl("nvidia/NV-Embed-v2") is DENSE_VL["nv-embed-v2"]
    other = resolve_dense_vl("someone/another-clip")
    assert other.hf_id == "someone/another-clip" and other.revision is None
    assert resolve_dense_vl("all-minilm-l6-v2") is REGISTRY["all-minilm-l6-v2"]


def test_lazy_export_outside_all() -> None:
    assert pagesight.models.VLEncoder is vl.VLEncoder is dense_vl.VLEncoder
    assert "VLEncoder" not in pagesight.models.__all__


def test_backend_choice() -> None:
    assert VLEncoder("clip-vit-b-32").backend_name == "sentence-transformers"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its license warning, tested below
        assert VLEncoder("nv-embed-v2").backend_name == "nv-embed"
    assert VLEncoder("e5-v").backend_name == "e5-v"
    assert VLEncoder("nvidia/llama-nemotron-embed-vl-1b-v2").backend_name == "nvidia"
    assert VLEncoder("someone/another-clip").backend_name == "sentence-transformers"


def test_nomic_vision_pairs_with_nomic_text_by_default() -> None:
    enc = VLEncoder("nomic-embed-vision-v1.5")
    assert enc.text_model == "nomic-embed-text-v1.5" and enc.backend_name == "sentence-transformers"
    assert enc.info.model == "nomic-ai/nomic-embed-vision-v1.5"
    other = VLEncoder("nomic-embed-vision-v1.5", text_model="all-minilm-l6-v2")
    assert other.info.model == "nomic-ai/nomic-embed-vision-v1.5+all-minilm-l6-v2"  # another space
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        enc.load()


# -- info and licenses ----------------------------------------------------------------------------


def test_info_without_loading() -> None:
    enc = VLEncoder("llama-nemotron-embed-vl-1b-v2")
    info = enc.info
    assert (info.model, info.revision, info.dimensions, info.kind) == (
        "nvidia/llama-nemotron-embed-vl-1b-v2",
        "582e3bf72aee355e3c59ed89de53543c5b0657ee",
        2048,
        "dense-vl",
    )
    assert enc._backend._model is None  # type: ignore[attr-defined]
    assert VLEncoder("llama-nemotron-embed-vl-1b-v2", revision="abc").info.revision == "abc"


def test_info_of_a_folder(reference: VLEncoder, standin_dir: Path) -> None:
    info = reference.info
    assert (info.model, info.revision, info.dimensions, info.kind) == (
        str(standin_dir.resolve()),
        None,
        HIDDEN,
        "dense-vl",
    )


def test_non_commercial_model_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pagesight.models._licenses._WARNED_LICENSES", set())
    with pytest.warns(UserWarning, match=r"NV-Embed-v2 is licensed for non-commercial.*CC-BY-NC-4.0"):
        VLEncoder("nv-embed-v2")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        VLEncoder("nv-embed-v2")
        VLEncoder("llama-nemotron-embed-vl-1b-v2")  # commercial use allowed: no warning
    assert not [w for w in record if "non-commercial" in str(w.message)]


# -- Matryoshka -----------------------------------------------------------------------------------


def test_dimensions_refused_for_models_not_trained_for_truncation(standin_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"`dimensions` cannot be 256 .*512-d vectors"):
        VLEncoder("clip-vit-b-32", dimensions=256)
    assert VLEncoder("clip-vit-b-32", dimensions=512).dimensions == 512  # the native size is no cut
    with pytest.raises(ConfigurationError, match="`dimensions` must be an integer of at least 1"):
        VLEncoder("clip-vit-b-32", dimensions=0)
    # a folder's size comes from its config.json (hidden_size), so it is checked at once too
    with pytest.raises(ConfigurationError, match=r"cannot be 8 .*16-d vectors"):
        VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", dimensions=8)
    assert (
        VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", dimensions=HIDDEN).dimensions
        == HIDDEN
    )


def test_matryoshka_truncation_is_cut_then_normalize(
    standin_dir: Path, reference: VLEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = replace(resolve_dense_vl(str(standin_dir)), matryoshka_dims=(4, 8, HIDDEN), dimensions=HIDDEN)
    monkeypatch.setattr(dense_vl, "resolve", lambda model, kind: trained)
    with pytest.raises(ConfigurationError, match=r"one of 4, 8, 16 .*got 5"):
        VLEncoder(str(standin_dir), dimensions=5)
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", dimensions=8)
    texts = ["invoice total", "who signed the contract"]
    cut = enc.encode_queries(texts)
    full = reference.encode_queries(texts).astype(np.float64)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert cut.shape == (2, 8) and cut.dtype == np.float32 and enc.dimensions == 8
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    assert enc.encode_documents([]).shape == (0, 8)


# -- batching -------------------------------------------------------------------------------------


class OOMAbove:
    """Wraps the stand-in's encode_documents: CUDA out of memory above ``limit`` inputs per call."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.sizes: list[int] = []

    def __call__(self, images: Any = None, texts: Any = None) -> Any:
        n = len(texts if texts is not None else images)
        self.sizes.append(n)
        if n > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return self.inner(images=images, texts=texts)


def test_batches_halve_on_cuda_oom_and_lose_nothing(
    standin_dir: Path, reference: VLEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"document number {i}" for i in range(11)]
    expected = reference.encode_documents(texts)
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", batch_size=8).load()
    model = enc._backend.model  # type: ignore[attr-defined]
    fake = OOMAbove(model.encode_documents, limit=2)
    monkeypatch.setattr(model, "encode_documents", fake)
    out = enc.encode_documents(texts)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert enc.batch_size == 2
    assert fake.sizes == [8, 4, 2, 2, 2, 2, 2, 1]  # failed at 8 and 4, then 2 at a time to the end


def test_plain_batches(standin_dir: Path) -> None:
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", batch_size=3).load()
    model = enc._backend.model  # type: ignore[attr-defined]
    model.calls.clear()
    enc.encode_queries([f"q{i}" for i in range(7)])
    assert [c["n"] for c in model.calls] == [3, 3, 1]


# -- threads --------------------------------------------------------------------------------------


def test_concurrent_first_use_loads_once_and_agrees(standin_dir: Path, reference: VLEncoder) -> None:
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu")
    texts = ["alpha", "beta", "gamma"]
    results: list[np.ndarray] = []
    models: list[Any] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        results.append(enc.encode_queries(texts))
        models.append(enc._backend._model)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len({id(m) for m in models}) == 1
    for r in results:
        np.testing.assert_allclose(r, reference.encode_queries(texts), atol=1e-6)


def test_empty_inputs_load_nothing_when_the_size_is_known() -> None:
    enc = VLEncoder("llama-nemotron-embed-vl-1b-v2")  # no trust_remote_code: a load would raise
    assert enc.encode_queries([]).shape == (0, 2048)
    assert enc.encode_pages([]).shape == (0, 2048) and enc.encode_images([]).shape == (0, 2048)
    assert enc._backend._model is None  # type: ignore[attr-defined]


def test_progress_bar_on_request(standin_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", show_progress=True).encode_queries(
        ["a"]
    )
    err = capsys.readouterr().err
    assert "Encoding queries" in err and "1/1" in err
    VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu").encode_documents(["a"])
    assert "Encoding documents" not in capsys.readouterr().err

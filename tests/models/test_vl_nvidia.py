"""VLEncoder's NVIDIA embed-vl backend, through the real AutoModel remote-code path on a stand-in model."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, DocumentLoadError, ModelNotAvailableError
from pagesight.models import VLEncoder
from pagesight.models._vl_nvidia import NvidiaEmbedVLBackend
from pagesight.models.registry import DENSE_VL

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_embed_vl"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_colembed"))

from colembed_builders import build_standin  # noqa: E402
from vl_builders import build_standin_embed_vl  # noqa: E402

HIDDEN = 16


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


def normalized(x: Any) -> np.ndarray:
    a = x.detach().float().numpy().astype(np.float64)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_standin_embed_vl(tmp_path_factory.mktemp("embed-vl") / "standin-embed-vl", hidden=HIDDEN)


@pytest.fixture(scope="module")
def encoder(standin_dir: Path) -> VLEncoder:
    return VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu").load()


@pytest.fixture
def model(encoder: VLEncoder) -> Any:
    """The loaded remote-code model, its call log cleared."""
    loaded = encoder._backend.model  # type: ignore[attr-defined]
    loaded.calls.clear()
    return loaded


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pages")
    out = []
    for i, color in enumerate(["red", "navy", "white"]):
        path = folder / f"page-{i + 1}.png"
        img = Image.new("RGB", (40 + 8 * i, 56), color)
        img.paste(Image.new("RGB", (12, 12), "black"), (4 * i, 6 * i))
        img.save(path)
        out.append(path)
    return out


def make_page(text: str, image: Path | None, number: int = 1) -> Page:
    return Page(
        source="docs/report.pdf",
        page=number,
        text=text,
        image=image,
        width=40 if image else 0,
        height=56 if image else 0,
        content_hash="cd" * 32,
    )


# -- loading --------------------------------------------------------------------------------------


def test_auto_backend_for_a_remote_code_folder_is_nvidia(standin_dir: Path) -> None:
    enc = VLEncoder(str(standin_dir), trust_remote_code=True)
    assert enc.backend_name == "nvidia"
    assert enc._backend._model is None  # type: ignore[attr-defined]  # the constructor loads nothing


def test_remote_code_is_refused_without_trust(standin_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        VLEncoder(str(standin_dir)).encode_queries(["q"])
    with pytest.raises(
        ConfigurationError, match="pinned to revision 582e3bf72aee355e3c59ed89de53543c5b0657ee"
    ):
        VLEncoder("llama-nemotron-embed-vl-1b-v2").load()


def test_processor_settings_after_load(model: Any) -> None:
    assert model.processor.max_input_tiles == 6
    assert model.processor.use_thumbnail is True


def test_a_folder_without_encode_documents_is_not_taken_for_embed_vl(tmp_path: Path) -> None:
    folder = build_standin(tmp_path / "colembed")  # remote code with forward_queries, no encode_documents
    enc = VLEncoder(str(folder), trust_remote_code=True, device="cpu")
    assert enc.backend_name == "nvidia"
    with pytest.raises(ModelNotAvailableError, match="not an NVIDIA embed-vl-style model"):
        enc.load()


def test_broken_folder_and_missing_folder(tmp_path: Path, standin_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((standin_dir / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "modeling_missing.Nothing"
    (broken / "config.json").write_text(json.dumps(config))
    for name in ("modeling_standin_embed_vl.py", "model.safetensors"):
        (broken / name).write_bytes((standin_dir / name).read_bytes())
    with pytest.raises(ModelNotAvailableError, match="could not load the model in"):
        VLEncoder(str(broken), trust_remote_code=True, device="cpu").load()
    with pytest.raises(ModelNotAvailableError, match="unknown model"):
        VLEncoder(str(tmp_path / "no-such-folder"))


def test_hub_unreachable_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py sets HF_HUB_OFFLINE=1: the Hub cannot be reached, as on any offline machine.
    monkeypatch.setenv("PAGESIGHT_SKIP_ENV_CHECK", "1")  # past the package check (no torchvision here)
    enc = VLEncoder("llama-nemotron-embed-vl-1b-v2", trust_remote_code=True, device="cpu")
    with pytest.raises(ModelNotAvailableError) as info:
        enc.load()
    message = str(info.value)
    assert "nvidia/llama-nemotron-embed-vl-1b-v2 at revision 582e3bf72aee" in message
    assert "pass the path of a downloaded copy" in message


def test_unpinned_model_warns_to_pin_a_revision(caplog: pytest.LogCaptureFixture) -> None:
    enc = VLEncoder("llama-3.2-nemoretriever-1b-vlm-embed-v1", trust_remote_code=True, device="cpu")
    with (
        caplog.at_level(logging.WARNING, logger="pagesight.models._vl_nvidia"),
        pytest.raises(ModelNotAvailableError),
    ):
        enc.load()
    assert "no revision is pinned" in caplog.text and "revision=<commit>" in caplog.text


def test_old_transformers_is_named_before_loading() -> None:
    backend = NvidiaEmbedVLBackend(DENSE_VL["llama-nemotron-embed-vl-1b-v2"], trust_remote_code=True)
    with pytest.raises(ModelNotAvailableError, match=r'pip install "transformers>=4.56"'):
        backend._check_transformers("4.55.2")
    backend._check_transformers("4.56.0")
    backend._check_transformers("5.23.0")


# -- encoding -------------------------------------------------------------------------------------


def test_shapes_norms_and_dtype(encoder: VLEncoder, images: list[Path]) -> None:
    q = encoder.encode_queries(["total amount", "who signed"])
    d = encoder.encode_documents(["the total is 42"])
    i = encoder.encode_images(images)
    assert q.shape == (2, HIDDEN) and d.shape == (1, HIDDEN) and i.shape == (3, HIDDEN)
    assert all(unit_rows(x) for x in (q, d, i))
    assert encoder.dimensions == encoder.native_dimensions == HIDDEN
    assert encoder.encode_queries([]).shape == (0, HIDDEN)


def test_query_and_document_paths_differ(encoder: VLEncoder, model: Any) -> None:
    q = encoder.encode_queries(["invoice total"])
    d = encoder.encode_documents(["invoice total"])
    assert [c["method"] for c in model.calls] == ["encode_queries", "encode_documents"]
    assert model.calls[0]["texts"] == ["query: invoice total"]
    assert model.calls[1]["texts"] == ["passage: invoice total"]
    assert not np.allclose(q, d)


def test_p_max_length_per_modality(encoder: VLEncoder, model: Any, images: list[Path]) -> None:
    encoder.encode_queries(["q"])
    encoder.encode_documents(["t"])
    encoder.encode_images(images[:1])
    encoder.encode_pages([make_page("some text", images[0])])
    got = [(c["modality"], c["p_max_length"], c["max_input_tiles"], c["use_thumbnail"]) for c in model.calls]
    assert got == [
        ("query", 8192, 6, True),
        ("text", 8192, 6, True),
        ("image", 2048, 6, True),
        ("image_text", 10240, 6, True),
    ]


def test_vectors_equal_the_models_own_normalized(encoder: VLEncoder, model: Any, images: list[Path]) -> None:
    pil = Image.open(images[1]).convert("RGB")
    with torch.inference_mode():
        model.processor.p_max_length = 2048
        expected_image = normalized(model.encode_documents(images=[pil]))
        expected_query = normalized(model.encode_queries(["who signed"]))
    np.testing.assert_allclose(encoder.encode_images([images[1]]), expected_image, atol=1e-6)
    np.testing.assert_allclose(encoder.encode_images([pil]), expected_image, atol=1e-6)
    np.testing.assert_allclose(encoder.encode_queries(["who signed"]), expected_query, atol=1e-6)


def test_identical_inputs_identical_vectors_different_inputs_differ(
    encoder: VLEncoder, images: list[Path]
) -> None:
    a = encoder.encode_images([images[0], images[0], images[1]])
    assert np.array_equal(a[0], a[1]) and not np.allclose(a[0], a[2])
    t = encoder.encode_documents(["alpha", "alpha", "beta"])
    assert np.array_equal(t[0], t[1]) and not np.allclose(t[0], t[2])


def test_unreadable_image_names_the_file(encoder: VLEncoder, tmp_path: Path) -> None:
    with pytest.raises(DocumentLoadError, match="does not exist"):
        encoder.encode_images([tmp_path / "missing.png"])
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(DocumentLoadError, match="not a readable image"):
        encoder.encode_images([bad])
    with pytest.raises(TypeError):
        encoder.encode_queries("a single string")  # type: ignore[arg-type]


def test_bfloat16_weights_still_give_float32_unit_vectors(standin_dir: Path, encoder: VLEncoder) -> None:
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", dtype="bfloat16")
    q = enc.encode_queries(["invoice total"])
    assert enc._backend.model.dtype == torch.bfloat16  # type: ignore[attr-defined]
    assert unit_rows(q)
    assert float((q @ encoder.encode_queries(["invoice total"]).T)[0, 0]) > 0.97  # bf16 rounding only


def test_nan_output_is_an_error(encoder: VLEncoder, model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "encode_queries", lambda texts: torch.full((len(texts), HIDDEN), float("nan")))
    with pytest.raises(ModelNotAvailableError, match="NaN or infinite"):
        encoder.encode_queries(["q"])


# -- pages ----------------------------------------------------------------------------------------


def test_auto_page_policy(encoder: VLEncoder, model: Any, images: list[Path]) -> None:
    pages = [
        make_page("text and image", images[0], 1),
        make_page("", images[1], 2),
        make_page("text only", None, 3),
        make_page("  ", None, 4),
    ]
    out = encoder.encode_pages(pages)
    assert out.shape == (4, HIDDEN) and unit_rows(out)
    by_modality = {c["modality"]: c for c in model.calls}
    assert set(by_modality) == {"image_text", "image", "text"}
    assert by_modality["image_text"]["texts"] == ["passage: text and image"]
    assert by_modality["text"]["texts"] == ["passage: text only", "passage: report.pdf, page 4"]
    # rows come back in input order: each equals the page embedded alone
    np.testing.assert_allclose(out[1], encoder.encode_images([images[1]])[0], atol=1e-6)
    np.testing.assert_allclose(out[2], encoder.encode_documents(["text only"])[0], atol=1e-6)
    np.testing.assert_allclose(out[3], encoder.encode_documents(["report.pdf, page 4"])[0], atol=1e-6)


def test_forced_policies_and_the_fallback_warning(standin_dir: Path, images: list[Path]) -> None:
    pages = [make_page("text and image", images[0], 1), make_page("no image here", None, 2)]
    for policy, first in (("image", "image"), ("image_text", "image_text"), ("text", "text")):
        enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cpu", page_input=policy)
        model = enc.load()._backend.model  # type: ignore[attr-defined]
        model.calls.clear()
        if policy == "text":
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = enc.encode_pages(pages)
        else:
            with pytest.warns(UserWarning, match=r"1 page\(s\) have no rendered image.*page 2") as record:
                out = enc.encode_pages(pages)
            assert len(record) == 1
        assert out.shape == (2, HIDDEN)
        assert [c["modality"] for c in model.calls] == (["text"] if policy == "text" else ["text", first])


def test_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="`page_input`"):
        VLEncoder("clip-vit-b-32", page_input="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`batch_size`"):
        VLEncoder("clip-vit-b-32", batch_size=0)
    with pytest.raises(ConfigurationError, match="`backend`"):
        VLEncoder("clip-vit-b-32", backend="onnx")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`dtype`"):
        VLEncoder("clip-vit-b-32", dtype="int3")
    with pytest.raises(ConfigurationError, match="`text_model`"):
        VLEncoder("llama-nemotron-embed-vl-1b-v2", text_model="nomic-embed-text-v1.5")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_defaults_to_bfloat16_and_agrees_with_cpu(standin_dir: Path, encoder: VLEncoder) -> None:
    enc = VLEncoder(str(standin_dir), trust_remote_code=True, device="cuda")
    q = enc.encode_queries(["invoice total", "who signed"])
    model = enc._backend.model  # type: ignore[attr-defined]
    assert model.dtype == torch.bfloat16 and model.device.type == "cuda"
    assert unit_rows(q)
    cpu = encoder.encode_queries(["invoice total", "who signed"])
    assert float(np.min(np.sum(q * cpu, axis=1))) > 0.97

"""VLEncoder's sentence-transformers backend: tiny random CLIP / SigLIP, and an image + text model pair."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models import VLEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_embed_vl"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import build_tiny_model  # noqa: E402
from vl_builders import (  # noqa: E402
    CLIP_PROJECTION,
    build_tiny_clip,
    build_tiny_clip_vision,
    build_tiny_siglip,
    clip_tokenizer,
)


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


def normalized(x: Any) -> np.ndarray:
    x = getattr(x, "pooler_output", x)
    a = x.detach().float().numpy().astype(np.float64)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def picture(color: str, spot: tuple[int, int] = (3, 3), size: tuple[int, int] = (40, 48)) -> Image.Image:
    img = Image.new("RGB", size, color)
    img.paste(Image.new("RGB", (10, 10), "black"), spot)
    return img


def make_page(text: str, image: Path | None, number: int = 1) -> Page:
    return Page(
        source="scan.pdf",
        page=number,
        text=text,
        image=image,
        width=40 if image else 0,
        height=48 if image else 0,
        content_hash="ef" * 32,
    )


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("vl-st") / "tiny-clip")


@pytest.fixture(scope="module")
def clip(clip_dir: Path) -> VLEncoder:
    return VLEncoder(str(clip_dir), device="cpu").load()


@pytest.fixture(scope="module")
def page_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "page-1.png"
    picture("teal", (8, 20)).save(path)
    return path


# -- CLIP -----------------------------------------------------------------------------------------


def test_tiny_clip_texts_and_images_share_one_space(clip: VLEncoder, page_image: Path) -> None:
    assert clip.backend_name == "sentence-transformers"
    assert clip.supports_images and not clip.supports_image_text
    q = clip.encode_queries(["a red square", "a blue circle"])
    d = clip.encode_documents(["a red square"])
    i = clip.encode_images([picture("red"), page_image])
    assert (
        q.shape == (2, CLIP_PROJECTION)
        and d.shape == (1, CLIP_PROJECTION)
        and i.shape == (2, CLIP_PROJECTION)
    )
    assert all(unit_rows(x) for x in (q, d, i))
    assert clip.dimensions == CLIP_PROJECTION and clip.info.kind == "dense-vl"
    scores = q @ i.T  # one space: texts and images compare directly
    assert scores.shape == (2, 2) and np.all(np.abs(scores) <= 1.0 + 1e-6)


def test_identical_inputs_give_identical_vectors(clip: VLEncoder, clip_dir: Path) -> None:
    a = clip.encode_images([picture("red"), picture("red"), picture("red", (20, 30))])
    assert np.array_equal(a[0], a[1]) and not np.allclose(a[0], a[2])
    t = clip.encode_queries(["same words", "same words", "other words"])
    assert np.array_equal(t[0], t[1]) and not np.allclose(t[0], t[2])
    again = VLEncoder(str(clip_dir), device="cpu").encode_queries(["same words"])
    np.testing.assert_allclose(again[0], t[0], atol=1e-6)  # another batch: same vector up to rounding


def test_image_vector_is_clips_own_image_features(clip: VLEncoder, clip_dir: Path, page_image: Path) -> None:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir)
    images = [picture("red"), Image.open(page_image).convert("RGB")]
    with torch.inference_mode():
        image_features = model.get_image_features(**processor(images=images, return_tensors="pt"))
        text_features = model.get_text_features(**processor(text=["a red square"], return_tensors="pt"))
    np.testing.assert_allclose(
        clip.encode_images([images[0], page_image]), normalized(image_features), atol=1e-5
    )
    np.testing.assert_allclose(clip.encode_documents(["a red square"]), normalized(text_features), atol=1e-5)


def test_the_hubs_legacy_clip_layout_loads_the_same_model(tmp_path: Path, clip: VLEncoder) -> None:
    legacy = VLEncoder(str(build_tiny_clip(tmp_path / "legacy-clip", legacy=True)), device="cpu")
    images = [picture("red"), picture("navy", (20, 5))]
    np.testing.assert_allclose(legacy.encode_images(images), clip.encode_images(images), atol=1e-5)
    np.testing.assert_allclose(legacy.encode_queries(["hello"]), clip.encode_queries(["hello"]), atol=1e-5)


def test_long_texts_are_windowed_not_cut(clip: VLEncoder) -> None:
    head = "x" * 60
    long_a = head + " and then something entirely different follows " * 3
    long_b = head + " but another ending goes here instead of that " * 3
    out = clip.encode_documents([long_a, long_b])
    assert unit_rows(out)
    assert not np.allclose(out[0], out[1])  # beyond CLIP's 64-token window, the tails still count


def test_clip_pages(clip_dir: Path, page_image: Path) -> None:
    enc = VLEncoder(str(clip_dir), device="cpu")
    pages = [make_page("caption", page_image, 1), make_page("just text", None, 2), make_page("", None, 3)]
    out = enc.encode_pages(pages)
    assert out.shape == (3, CLIP_PROJECTION) and unit_rows(out)
    np.testing.assert_allclose(out[0], enc.encode_images([page_image])[0], atol=1e-6)  # no image+text form
    np.testing.assert_allclose(out[1], enc.encode_documents(["just text"])[0], atol=1e-6)
    np.testing.assert_allclose(out[2], enc.encode_documents(["scan.pdf, page 3"])[0], atol=1e-6)
    forced = VLEncoder(str(clip_dir), device="cpu", page_input="image_text")
    with pytest.raises(ConfigurationError, match="image and its text together"):
        forced.encode_pages(pages)


# -- SigLIP ---------------------------------------------------------------------------------------


def test_siglip_text_is_padded_to_64_tokens(tmp_path: Path) -> None:
    from transformers import SiglipModel

    folder = build_tiny_siglip(tmp_path / "tiny-siglip")
    enc = VLEncoder(str(folder), device="cpu")
    assert enc.backend_name == "sentence-transformers"
    got = enc.encode_queries(["hi there"])
    model = SiglipModel.from_pretrained(folder).eval()
    tok = clip_tokenizer()
    with torch.inference_mode():
        padded = model.get_text_features(
            **tok(["hi there"], padding="max_length", max_length=64, return_tensors="pt")
        )
        unpadded = model.get_text_features(**tok(["hi there"], return_tensors="pt"))
    np.testing.assert_allclose(got, normalized(padded), atol=1e-5)
    assert not np.allclose(normalized(padded), normalized(unpadded), atol=1e-3)  # the padding matters
    assert enc.encode_images([picture("red")]).shape == (1, got.shape[1])


# -- text-only sentence-transformers models -------------------------------------------------------


def test_text_only_model(tiny_plain_dir: Path, page_image: Path) -> None:
    enc = VLEncoder(str(tiny_plain_dir), device="cpu")
    assert not enc.supports_images
    with pytest.raises(ConfigurationError, match="text-only"):
        enc.encode_images([picture("red")])
    out = enc.encode_pages([make_page("words", page_image)])
    np.testing.assert_allclose(out, enc.encode_documents(["words"]), atol=1e-6)
    with pytest.raises(ConfigurationError, match="needs a model that embeds images"):
        VLEncoder(str(tiny_plain_dir), device="cpu", page_input="image").encode_pages(
            [make_page("w", page_image)]
        )


# -- an image model paired with a text model (the nomic-embed-vision + nomic-embed-text shape) ----


@pytest.fixture(scope="module")
def pair_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    vision = build_tiny_clip_vision(root / "tiny-vision", hidden=16)
    text = build_tiny_model(root / "tiny-nomic-text", hidden=16)  # a Nomic-named folder: Nomic prefixes
    return vision, text


def test_pair_queries_and_texts_carry_the_nomic_prefixes(pair_dirs: tuple[Path, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    vision, text = pair_dirs
    enc = VLEncoder(str(vision), text_model=str(text), device="cpu")
    assert enc.backend_name == "sentence-transformers" and enc.supports_images
    st = SentenceTransformer(str(text), device="cpu")
    raw = st.encode(["search_query: red car", "search_document: red car"], normalize_embeddings=False)
    raw = np.asarray(raw, dtype=np.float64)
    normed = (raw - raw.mean(axis=1, keepdims=True)) / np.sqrt(raw.var(axis=1, keepdims=True) + 1e-5)
    expected = normed / np.linalg.norm(normed, axis=1, keepdims=True)  # layer norm, then L2 (model card)
    q = enc.encode_queries(["red car"])
    d = enc.encode_documents(["red car"])
    np.testing.assert_allclose(q[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(d[0], expected[1], atol=1e-5)
    assert not np.allclose(q, d)


def test_pair_image_vector_is_the_cls_state(pair_dirs: tuple[Path, Path]) -> None:
    from transformers import AutoImageProcessor, AutoModel

    vision, text = pair_dirs
    enc = VLEncoder(str(vision), text_model=str(text), device="cpu")
    model = AutoModel.from_pretrained(vision).eval()
    processor = AutoImageProcessor.from_pretrained(vision, backend="pil")
    images = [picture("red"), picture("navy", (20, 5))]
    with torch.inference_mode():
        cls = model(**processor(images=images, return_tensors="pt")).last_hidden_state[:, 0]
    out = enc.encode_images(images)
    np.testing.assert_allclose(out, normalized(cls), atol=1e-5)
    assert out.shape == (2, 16) and enc.encode_queries(["q"]).shape == (1, 16)  # one space, one size


def test_pair_of_different_sizes_is_refused(tmp_path: Path, pair_dirs: tuple[Path, Path]) -> None:
    vision = build_tiny_clip_vision(tmp_path / "wide-vision", hidden=32)
    with pytest.raises(ConfigurationError, match=r"returns 16-d vectors but the image model .* 32-d"):
        VLEncoder(str(vision), text_model=str(pair_dirs[1]), device="cpu").load()


def test_listed_models_offline() -> None:
    # tests/conftest.py sets HF_HUB_OFFLINE=1: a listed model that is not downloaded says how to get it.
    with pytest.raises(ModelNotAvailableError, match="hf download sentence-transformers/clip-ViT-B-32"):
        VLEncoder("clip-vit-b-32", device="cpu").load()

"""ColEmbedEncoder's NVIDIA backend, through the real AutoModel remote-code path on a stand-in model."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models import ColEmbedEncoder, LateInteractionEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_colembed"))

from colembed_builders import build_standin  # noqa: E402

PATCHES = 16  # 32x32 image, 8x8 patches


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Reference MaxSim in float64: sum over query tokens of the best document-token similarity."""
    return float((query.astype(np.float64) @ doc.astype(np.float64).T).max(axis=1).sum())


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


def n_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_standin(tmp_path_factory.mktemp("nvidia") / "standin-colembed")


@pytest.fixture(scope="module")
def encoder(standin_dir: Path) -> ColEmbedEncoder:
    return ColEmbedEncoder(str(standin_dir), backend="nvidia", trust_remote_code=True, device="cpu").load()


@pytest.fixture
def model(encoder: ColEmbedEncoder) -> Any:
    """The loaded remote-code model, its call log cleared."""
    loaded = encoder._backend.model  # type: ignore[attr-defined]
    loaded.calls.clear()
    return loaded


@pytest.fixture(scope="module")
def page_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pages")
    out = []
    for i, color in enumerate(["red", "navy", "white", "green"]):
        path = folder / f"page-{i + 1}.png"
        img = Image.new("RGB", (60 + 10 * i, 80), color)
        img.paste(Image.new("RGB", (20, 20), "black"), (5 * i, 10 * i))
        img.save(path)
        out.append(path)
    return out


def make_page(text: str, image: Path | None, number: int = 1) -> Page:
    return Page(
        source="report.pdf",
        page=number,
        text=text,
        image=image,
        width=60 if image else 0,
        height=80 if image else 0,
        content_hash="ab" * 32,
    )


def test_loads_through_automodel_remote_code(encoder: ColEmbedEncoder, standin_dir: Path) -> None:
    model = encoder._backend.model  # type: ignore[attr-defined]
    assert type(model).__module__.startswith("transformers_modules")
    assert isinstance(encoder, LateInteractionEncoder)
    info = encoder.info
    assert info.kind == "late-interaction" and info.dimensions == 32 == encoder.dimensions
    assert info.model == str(standin_dir.resolve()) and info.revision is None
    assert encoder.supports_images


def test_auto_backend_picks_nvidia_for_a_remote_code_folder(standin_dir: Path) -> None:
    assert ColEmbedEncoder(str(standin_dir)).backend_name == "nvidia"


def test_queries_strip_padding_and_have_unit_rows(encoder: ColEmbedEncoder, model: Any) -> None:
    texts = ["a", "hello world", "a much longer query about floating point numbers", "naïve café"]
    out = encoder.encode_queries(texts)
    assert [m.shape for m in out] == [(1 + n_bytes(t), 32) for t in texts]  # marker + bytes, no padding
    assert all(unit_rows(m) for m in out)
    raw = model.forward_queries(texts, batch_size=8)  # what the remote code returns: one padded tensor
    assert raw.shape == (4, 1 + max(n_bytes(t) for t in texts), 32)
    assert float(raw[0, 2:].abs().sum()) == 0.0  # padding rows are zero
    np.testing.assert_allclose(out[1], raw[1, : 1 + n_bytes(texts[1])].numpy(), atol=1e-6)


def test_batches_follow_batch_size(standin_dir: Path) -> None:
    enc = ColEmbedEncoder(
        str(standin_dir), backend="nvidia", trust_remote_code=True, device="cpu", batch_size=2
    )
    model = enc.load()._backend.model  # type: ignore[attr-defined]
    model.calls.clear()
    out = enc.encode_queries([f"query {i}" for i in range(5)])
    assert len(out) == 5
    assert model.calls == [("forward_queries", 2), ("forward_queries", 2), ("forward_queries", 1)]
    single = enc.encode_queries(["query 4"])[0]
    np.testing.assert_allclose(out[4], single, atol=1e-5)  # batching does not change a result


def test_images_go_through_forward_passages(
    encoder: ColEmbedEncoder, model: Any, page_images: list[Path]
) -> None:
    from_paths = encoder.encode_images([str(p) for p in page_images[:2]])
    from_pil = encoder.encode_images([Image.open(page_images[0])])
    assert [m.shape for m in from_paths] == [(PATCHES + 1, 32)] * 2
    assert all(unit_rows(m) for m in from_paths)
    np.testing.assert_allclose(from_paths[0], from_pil[0], atol=1e-6)
    assert model.calls == [("forward_passages", 2), ("forward_passages", 1)]


def test_pages_take_the_path_their_content_and_policy_ask_for(
    encoder: ColEmbedEncoder, model: Any, page_images: list[Path]
) -> None:
    both = make_page("Total: 1,250 EUR", page_images[0], 1)
    image_only = make_page("", page_images[1], 2)
    text_only = make_page("An HTML page", None, 3)
    out = encoder.encode_pages([both, image_only, text_only])
    assert [m.shape[0] for m in out] == [
        PATCHES + 1 + n_bytes(both.text),
        PATCHES + 1,
        1 + n_bytes(text_only.text),
    ]
    assert sorted(model.calls) == [("forward_documents", 1), ("forward_passages", 1), ("forward_queries", 1)]
    # the three paths give different vectors for the same content
    doc = encoder.encode_pages([make_page("", page_images[1], 2)])[0]
    np.testing.assert_allclose(doc, out[1], atol=1e-6)
    query_side = encoder.encode_queries([both.text])[0]
    page_side = encoder.encode_pages([both])[0]
    assert query_side.shape[0] != page_side.shape[0]
    assert not np.allclose(query_side[0], encoder.encode_documents(["x"])[0][0])

    model.calls.clear()
    as_image = ColEmbedEncoder(
        str(encoder.spec.path), backend="nvidia", trust_remote_code=True, device="cpu", page_input="image"
    )
    as_text = ColEmbedEncoder(
        str(encoder.spec.path), backend="nvidia", trust_remote_code=True, device="cpu", page_input="text"
    )
    assert as_image.encode_pages([both])[0].shape[0] == PATCHES + 1
    assert as_text.encode_pages([both])[0].shape[0] == 1 + n_bytes(both.text)


def test_image_policy_without_an_image_falls_back_to_text_with_a_warning(standin_dir: Path) -> None:
    enc = ColEmbedEncoder(
        str(standin_dir), backend="nvidia", trust_remote_code=True, device="cpu", page_input="image"
    )
    with pytest.warns(UserWarning, match="no rendered image.*report.pdf page 3"):
        out = enc.encode_pages([make_page("An HTML page", None, 3)])
    assert out[0].shape[0] == 1 + n_bytes("An HTML page")


def test_maxsim_ranking_equals_the_models_get_scores(
    encoder: ColEmbedEncoder, model: Any, page_images: list[Path]
) -> None:
    queries = ["total amount due", "red square", "the harbour cranes"]
    corpus = [
        {"image": Image.open(p).convert("RGB"), "text": t}
        for p, t in zip(
            page_images,
            ["Invoice total 1,250 EUR", "", "Cranes in the harbour", "Minutes of the meeting"],
            strict=True,
        )
    ]
    q = encoder.encode_queries(queries)
    pages = [make_page(d["text"], p, i + 1) for i, (d, p) in enumerate(zip(corpus, page_images, strict=True))]
    p = encoder.encode_pages(pages)
    ours = np.array([[maxsim(qi, pj) for pj in p] for qi in q])

    reference = model.get_scores(model.forward_queries(queries), _documents(model, corpus)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    assert (np.argsort(-ours, axis=1) == np.argsort(-reference, axis=1)).all()


def _documents(model: Any, corpus: list[dict[str, Any]]) -> Any:
    """The model's own page embeddings: documents with text, passages without (as encode_pages does)."""
    import torch

    rows = []
    for doc in corpus:
        out = model.forward_documents([doc]) if doc["text"] else model.forward_passages([doc["image"]])
        rows.append(out[0])
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)


def test_bfloat16_weights_still_give_float32_unit_rows(standin_dir: Path) -> None:
    enc = ColEmbedEncoder(
        str(standin_dir), backend="nvidia", trust_remote_code=True, device="cpu", dtype="bfloat16"
    )
    model = enc.load()._backend.model  # type: ignore[attr-defined]
    import torch

    assert next(model.parameters()).dtype == torch.bfloat16
    out = enc.encode_queries(["hello world"])[0]
    assert out.shape == (12, 32) and unit_rows(out)


def test_refuses_remote_code_without_trust_remote_code(standin_dir: Path) -> None:
    enc = ColEmbedEncoder(str(standin_dir), backend="nvidia", device="cpu")
    with pytest.raises(ConfigurationError, match="pass trust_remote_code=True"):
        enc.load()
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        enc.encode_queries(["x"])


def test_registry_model_refused_before_any_download() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = ColEmbedEncoder("llama-nemoretriever-colembed-3b-v1")
    with pytest.raises(
        ConfigurationError, match="4194bdd2cd2871f220ddba6273ce173ef1217a1e.*trust_remote_code=True"
    ):
        enc.load()


def test_old_transformers_remote_code_names_the_version_that_works(tmp_path: Path) -> None:
    folder = build_standin(tmp_path / "standin-colembed-old", old_transformers=True)
    enc = ColEmbedEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu")
    with pytest.raises(ModelNotAvailableError) as info:
        enc.load()
    message = str(info.value)
    assert 'pip install "transformers==4.49.0"' in message
    assert "LLAMA_INPUTS_DOCSTRING" in message  # what failed, in one line, not a stack trace
    assert "Traceback" not in message


def test_a_model_without_the_remote_code_methods_is_refused(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(
            vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8
        )
    ).save_pretrained(tmp_path / "bert")
    enc = ColEmbedEncoder(str(tmp_path / "bert"), backend="nvidia", trust_remote_code=True, device="cpu")
    with pytest.raises(ModelNotAvailableError, match="no forward_queries"):
        enc.load()

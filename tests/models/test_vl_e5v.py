"""The E5-V backend on a tiny random LLaVA-NeXT (CLIP tower + Llama), loaded by the real from_pretrained."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._vl_e5v import IMAGE_PROMPT, E5VBackend
from pagesight.models.registry import ModelSpec

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_vl_text"))

from vl_text_builders import build_tiny_e5v  # noqa: E402

HIDDEN = 32
HEADER = "<|start_header_id|>user<|end_header_id|>\n\n"
FOOTER = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n \n"


def expected_text_prompt(text: str) -> str:
    return f"{HEADER}{text}\nSummary above sentence in one word: {FOOTER}"


EXPECTED_IMAGE_PROMPT = f"{HEADER}<image>\nSummary above image in one word: {FOOTER}"


class RecordingProcessor:
    """Wraps the loaded LlavaNextProcessor: records each call's arguments and output, then delegates."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.calls: list[tuple[dict[str, Any], Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        out = self.processor(**kwargs)
        self.calls.append((kwargs, {k: v.clone() for k, v in out.items()}))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.processor, name)


@pytest.fixture(scope="module")
def e5v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_e5v(tmp_path_factory.mktemp("e5v") / "tiny-e5-v")


def spec_for(folder: Path, **changes: Any) -> ModelSpec:
    return dataclasses.replace(ModelSpec(alias=str(folder), kind="dense-vl", path=str(folder)), **changes)


@pytest.fixture(scope="module")
def backend(e5v_dir: Path) -> E5VBackend:
    backend = E5VBackend(spec_for(e5v_dir), device="cpu")
    backend.load()
    return backend


@pytest.fixture
def recorder(backend: E5VBackend) -> Any:
    real = backend._processor
    recording = RecordingProcessor(real)
    backend._processor = recording
    yield recording
    backend._processor = real


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    sizes = [(32, 32), (64, 32), (24, 48)]  # different grids -> different numbers of image tokens
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def last_token_state(backend: E5VBackend, prompt: str) -> np.ndarray:
    """Known answer for a text: the Llama's final (normed) state at the last token, no padding, no batch."""
    import torch

    ids = backend.processor.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        states = backend.model.model.language_model(input_ids=ids).last_hidden_state
    out: np.ndarray = states[0, -1].double().numpy()
    return out


def test_loads_native_classes(backend: E5VBackend) -> None:
    assert type(backend.model).__name__ == "LlavaNextForConditionalGeneration"
    assert type(backend.processor).__name__ == "LlavaNextProcessor"
    assert backend.processor.tokenizer.padding_side == "left"
    assert backend.native_dimensions == HIDDEN
    assert backend.supports_images is True and backend.supports_image_text is False
    assert backend.name == "e5-v"


def test_exact_text_prompts_reach_the_processor(backend: E5VBackend, recorder: RecordingProcessor) -> None:
    backend.encode_queries(["how do cats sit"])
    backend.encode_documents(["cats sit on mats", "bread"])
    assert [kwargs["text"] for kwargs, _ in recorder.calls] == [
        [expected_text_prompt("how do cats sit")],
        [expected_text_prompt("cats sit on mats"), expected_text_prompt("bread")],
    ]
    assert all("images" not in kwargs for kwargs, _ in recorder.calls)


def test_exact_image_prompt_reaches_the_processor(
    backend: E5VBackend, recorder: RecordingProcessor, images: list[Image.Image]
) -> None:
    assert IMAGE_PROMPT == EXPECTED_IMAGE_PROMPT
    backend.encode_images(images[:2])
    ((kwargs, out),) = recorder.calls
    assert kwargs["text"] == [EXPECTED_IMAGE_PROMPT] * 2
    assert kwargs["images"] == images[:2]
    image_id = backend.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (out["input_ids"] == image_id).sum(dim=1).min() > 1  # <image> expanded into the image's tokens


def test_left_padding(backend: E5VBackend, recorder: RecordingProcessor) -> None:
    backend.encode_documents(["cats", "cats sit on red mats of paper"])
    ((_, out),) = recorder.calls
    mask = out["attention_mask"].numpy()
    assert mask[:, -1].all()  # position -1 is real in every row
    assert mask[0, 0] == 0 and mask[1].all()  # the shorter row is padded at the start
    pad = backend.processor.tokenizer.pad_token_id
    assert (out["input_ids"][0, : int((mask[0] == 0).sum())] == pad).all()


def test_text_vectors_match_known_answer(backend: E5VBackend) -> None:
    texts = ["cats", "dogs sit on blue mats of paper", "how do bake bread"]
    got = backend.encode_documents(texts)
    assert got.dtype == np.float32 and got.shape == (3, HIDDEN)
    for row, text in zip(got, texts, strict=True):
        np.testing.assert_allclose(row, last_token_state(backend, expected_text_prompt(text)), atol=1e-4)
    np.testing.assert_array_equal(backend.encode_queries(texts), got)  # E5-V: one prompt for both


def test_image_vectors_are_batch_invariant_and_deterministic(
    backend: E5VBackend, images: list[Image.Image]
) -> None:
    batch = backend.encode_images(images)
    assert batch.shape == (3, HIDDEN) and batch.dtype == np.float32
    assert np.isfinite(batch).all()
    np.testing.assert_array_equal(batch, backend.encode_images(images))
    for i, image in enumerate(images):  # alone (no padding) = in a left-padded batch
        np.testing.assert_allclose(backend.encode_images([image])[0], batch[i], atol=1e-4)
    assert not np.allclose(batch[0], batch[1], atol=1e-3)  # the image changes the vector


def test_image_known_answer(backend: E5VBackend, images: list[Image.Image]) -> None:
    import torch

    inputs = backend.processor(text=[EXPECTED_IMAGE_PROMPT], images=[images[0]], return_tensors="pt")
    with torch.inference_mode():
        states = backend.model(**inputs, output_hidden_states=True).hidden_states[-1]
    np.testing.assert_allclose(backend.encode_images([images[0]])[0], states[0, -1].numpy(), atol=1e-5)


def test_text_and_image_shapes_agree(backend: E5VBackend, images: list[Image.Image]) -> None:
    assert backend.encode_queries(["cats"]).shape == backend.encode_images(images[:1]).shape == (1, HIDDEN)
    assert backend.encode_documents([]).shape == backend.encode_images([]).shape == (0, HIDDEN)


def test_image_token_in_text_is_neutralized(backend: E5VBackend, recorder: RecordingProcessor) -> None:
    vector = backend.encode_documents(["<image> cats"])
    assert vector.shape == (1, HIDDEN)
    ((kwargs, _),) = recorder.calls
    assert "<image>" not in kwargs["text"][0]


def test_long_text_is_shortened_and_keeps_the_prompt(e5v_dir: Path) -> None:
    short = E5VBackend(spec_for(e5v_dir, max_tokens=64 + 5), device="cpu")  # 5 tokens of text fit
    short.load()
    recording = RecordingProcessor(short._processor)
    short._processor = recording
    long_text = " ".join(["cats sit on mats"] * 20)
    short.encode_documents([long_text])
    ((kwargs, out),) = recording.calls
    assert kwargs["text"] == [expected_text_prompt("cats sit on mats cats")]
    assert int(out["attention_mask"].sum()) < 40


def test_no_image_text_pages(backend: E5VBackend, images: list[Image.Image]) -> None:
    with pytest.raises(ConfigurationError, match="E5-V"):
        backend.encode_image_texts([(images[0], "cats")])


def test_unloadable_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotAvailableError, match="empty"):
        E5VBackend(spec_for(empty), device="cpu").load()


def test_through_vl_encoder(e5v_dir: Path, backend: E5VBackend, images: list[Image.Image]) -> None:
    vl = pytest.importorskip("pagesight.models.vl")
    encoder = vl.VLEncoder(str(e5v_dir), backend="e5-v", device="cpu")
    assert encoder.backend_name == "e5-v"
    assert encoder.supports_images is True and encoder.supports_image_text is False
    q = encoder.encode_queries(["how do cats sit"])
    i = encoder.encode_images(images[:2])
    assert q.shape == (1, HIDDEN) and i.shape == (2, HIDDEN) and i.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, i]), axis=1), 1.0, atol=1e-5)
    raw = backend.encode_images(images[:2])
    np.testing.assert_allclose(i, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out: np.ndarray = (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)
    return out


def check_low_precision(e5v_dir: Path, reference: E5VBackend, images: list[Image.Image], device: str) -> None:
    low = E5VBackend(spec_for(e5v_dir), device=device, dtype=None if device == "cuda" else "bfloat16")
    low.load()
    import torch

    assert low.model.dtype == torch.bfloat16  # bf16 on CUDA by default; asked for on CPU
    texts = ["cats sit on mats", "bread"]
    t, i = low.encode_documents(texts), low.encode_images(images)
    assert t.dtype == i.dtype == np.float32 and np.isfinite(t).all() and np.isfinite(i).all()
    assert cosines(t, reference.encode_documents(texts)).min() > 0.98
    assert cosines(i, reference.encode_images(images)).min() > 0.98


def test_bfloat16_weights_on_cpu(e5v_dir: Path, backend: E5VBackend, images: list[Image.Image]) -> None:
    check_low_precision(e5v_dir, backend, images, "cpu")


@pytest.mark.gpu
def test_bfloat16_on_cuda(e5v_dir: Path, backend: E5VBackend, images: list[Image.Image]) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    check_low_precision(e5v_dir, backend, images, "cuda")

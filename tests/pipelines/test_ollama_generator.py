"""OllamaGenerator driven through the real ``ollama`` client against the Ollama-protocol double."""

from __future__ import annotations

import base64
import io
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pagesight.errors import ConfigurationError, GenerationError, ModelNotAvailableError, PagesightError
from pagesight.models.generate import make_generator
from pagesight.models.generate.ollama import OllamaGenerator
from pagesight.pipelines.answer import answer, citation_label, resolve_citations
from pagesight.pipelines.ingest import ingest
from pagesight.pipelines.prompt import SYSTEM_PROMPT
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import Hit, PageStore
from tests.ollama_double import ChatModel, OllamaDouble

pytest.importorskip("ollama")

QUESTION = "How often should the compost heap be turned?"


def _raise_runner_crash(messages: list[dict[str, Any]]) -> str:
    raise RuntimeError("llama runner process has terminated: signal: killed")


@pytest.fixture(scope="module")
def _server(encoder: Any) -> Iterator[OllamaDouble]:
    chat_models = {
        "llama3.2": ChatModel(context_length=4096),
        "qwen2.5vl:3b": ChatModel(vision=True, family="qwen25vl"),
        "llava-old": ChatModel(vision=True, report_capabilities=False),
        "inventor": ChatModel(respond=lambda m: "See [nowhere.pdf p.4] and [garden.pdf p.2]."),
        "crashing": ChatModel(respond=_raise_runner_crash),
        "dropping": ChatModel(drop_after=2),
    }
    server = OllamaDouble({"all-minilm": encoder._backend.model}, chat_models=chat_models)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_server: OllamaDouble) -> OllamaDouble:
    _server.clear()
    return _server


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def _hit(source: str, page: int, text: str, image: Path | None, score: float) -> Hit:
    try:
        w, h = Image.open(image).size if image is not None else (0, 0)
    except OSError:  # a broken image file
        w, h = 0, 0
    return Hit(f"{source}-{page}", f"/docs/{source}", page, text, image, w, h, "0" * 64, score)


COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]


@pytest.fixture
def hits(tmp_path: Path) -> list[Hit]:
    """Five pages, best first; the second has no image; images are 400x500 and larger."""
    return [
        _hit(
            "garden.pdf",
            2,
            "Compost improves soil. Turn the heap every two weeks.",
            _png(tmp_path / "a.png", (400, 500), COLORS[0]),
            0.9,
        ),
        _hit("network.pdf", 1, "A firewall filters packets.", None, 0.8),
        _hit(
            "garden.pdf",
            1,
            "Tomatoes need full sun and regular watering.",
            _png(tmp_path / "b.png", (600, 400), COLORS[1]),
            0.7,
        ),
        _hit(
            "manual.pdf",
            7,
            "Restart the networking service.",
            _png(tmp_path / "c.png", (500, 800), COLORS[2]),
            0.6,
        ),
        _hit("manual.pdf", 8, "Static IP addresses.", _png(tmp_path / "d.png", (300, 300), COLORS[3]), 0.5),
    ]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _center_color(b64: str) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
        rgb = img.convert("RGB")
        return rgb.getpixel((rgb.width // 2, rgb.height // 2))  # type: ignore[return-value]


# -- text models -------------------------------------------------------------------------------------


def test_text_model_gets_the_prompt_without_images_and_cites_a_retrieved_page(server, hits):
    gen = OllamaGenerator("llama3.2", host=server.url)
    assert gen.vision is False
    text = gen.generate(QUESTION, hits)
    assert text == "Compost improves soil. [garden.pdf p.2]"

    body = server.chats[-1]
    assert body["model"] == "llama3.2" and body["stream"] is False
    assert body["options"] == {"temperature": 0}
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "images" not in user and server.chat_images[-1] == []
    for hit in hits:
        assert f"Page {citation_label(hit)}:\n{hit.text}" in user["content"]
    assert user["content"].endswith(f"Question: {QUESTION}")
    assert "attached images" not in user["content"]

    result = resolve_citations(QUESTION, text, hits)
    assert [(c.source, c.page, c.image, c.score) for c in result.citations] == [
        ("/docs/garden.pdf", 2, str(hits[0].image), 0.9)
    ]
    assert result.unmatched_citations == []


def test_an_invented_citation_is_reported_as_unmatched(server, hits):
    text = OllamaGenerator("inventor", host=server.url).generate(QUESTION, hits)
    result = resolve_citations(QUESTION, text, hits)
    assert result.unmatched_citations == ["[nowhere.pdf p.4]"]
    assert [(c.source, c.page) for c in result.citations] == [("/docs/garden.pdf", 2)]


def test_options_merge_over_the_default_and_keep_alive_is_sent(server, hits):
    gen = OllamaGenerator(
        "llama3.2", host=server.url, options={"temperature": 0.5, "num_predict": 64}, keep_alive="1m"
    )
    gen.generate(QUESTION, hits)
    assert server.chats[-1]["options"] == {"temperature": 0.5, "num_predict": 64}
    assert server.chats[-1]["keep_alive"] == "1m"


def test_a_long_prompt_raises_num_ctx_up_to_the_model_context(server, hits):
    long_hits = [
        Hit(h.id, h.source, h.page, "word " * 1000, h.image, 0, 0, h.content_hash, h.score) for h in hits
    ]
    OllamaGenerator("llama3.2", host=server.url).generate(QUESTION, long_hits)
    # 5 pages x 3000 characters ~ 5000 tokens + room for the answer -> 8192, capped at the model's 4096
    assert server.chats[-1]["options"] == {"temperature": 0, "num_ctx": 4096}
    OllamaGenerator("llama3.2", host=server.url, options={"num_ctx": 2048}).generate(QUESTION, long_hits)
    assert server.chats[-1]["options"]["num_ctx"] == 2048  # the caller's choice wins


# -- vision models ------------------------------------------------------------------------------------


def test_vision_model_gets_bounded_page_images_in_the_order_the_prompt_names_them(server, hits):
    gen = OllamaGenerator("qwen2.5vl:3b", host=server.url, max_images=3, max_pixels=20_000)
    assert gen.vision is True
    text = gen.generate(QUESTION, hits)
    assert text.endswith("[garden.pdf p.2]")

    sizes = server.chat_images[-1]
    assert len(sizes) == 3  # min(max_images, 4 pages with images)
    assert all(w * h <= 20_000 for w, h in sizes)
    assert sizes[0][0] * sizes[0][1] > 15_000  # scaled down to the budget, not far below it
    user = server.chats[-1]["messages"][1]
    assert [_center_color(b) for b in user["images"]] == COLORS[:3]
    with_images = [h for h in hits if h.image is not None][:3]
    order = ", ".join(f"image {i} is {citation_label(h)}" for i, h in enumerate(with_images, 1))
    assert f"The attached images show these pages: {order}." in user["content"]
    # aspect ratios survive the downscaling
    for (w, h), hit in zip(sizes, with_images, strict=True):
        assert abs(w / h - hit.width / hit.height) < 0.05


def test_vision_can_be_turned_off_and_cannot_be_forced_on_a_text_model(server, hits):
    OllamaGenerator("qwen2.5vl:3b", host=server.url, vision=False).generate(QUESTION, hits)
    assert "images" not in server.chats[-1]["messages"][1] and server.chat_images[-1] == []
    with pytest.raises(ConfigurationError, match="'llama3.2' does not take images"):
        OllamaGenerator("llama3.2", host=server.url, vision=True).check()


def test_vision_is_read_from_families_when_the_server_reports_no_capabilities(server, hits):
    gen = OllamaGenerator("llava-old", host=server.url, max_images=1)
    assert gen.vision is True
    gen.generate(QUESTION, hits)
    assert len(server.chat_images[-1]) == 1


def test_an_unreadable_page_image_is_skipped_with_a_warning(server, hits, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    hits[0] = _hit("garden.pdf", 2, hits[0].text, broken, 0.9)
    gen = OllamaGenerator("qwen2.5vl:3b", host=server.url, max_images=2)
    with pytest.warns(UserWarning, match="broken.png"):
        text = gen.generate(QUESTION, hits)
    assert text.endswith("[garden.pdf p.2]")  # the page's text still answers
    user = server.chats[-1]["messages"][1]
    assert [_center_color(b) for b in user["images"]] == COLORS[1:3]
    assert "image 1 is [garden.pdf p.1], image 2 is [manual.pdf p.7]" in user["content"]


# -- streaming ----------------------------------------------------------------------------------------


def test_streaming_pieces_join_to_the_generated_answer(server, hits):
    gen = OllamaGenerator("llama3.2", host=server.url)
    pieces = list(gen.stream(QUESTION, hits))
    assert server.chats[-1]["stream"] is True
    assert len(pieces) >= 2 and all(pieces)
    assert "".join(pieces) == gen.generate(QUESTION, hits)


# -- errors -------------------------------------------------------------------------------------------


def test_server_down_says_to_start_ollama():
    gen = OllamaGenerator("llama3.2", host=f"http://127.0.0.1:{_closed_port()}", timeout=5)
    with pytest.raises(ModelNotAvailableError, match="`ollama serve`") as info:
        gen.generate(QUESTION, [])
    assert "`ollama pull llama3.2`" in str(info.value)


def test_a_model_not_pulled_says_what_to_pull(server):
    with pytest.raises(ModelNotAvailableError, match="`ollama pull mistral-nope`"):
        OllamaGenerator("mistral-nope", host=server.url).check()
    assert server.chats == []


def test_an_embedding_model_cannot_answer(server):
    with pytest.raises(ConfigurationError, match="'all-minilm' cannot write answers"):
        OllamaGenerator("all-minilm", host=server.url).check()


def test_a_server_error_while_answering_is_a_pagesight_error(server, hits):
    with pytest.raises(GenerationError, match="llama runner process has terminated") as info:
        OllamaGenerator("crashing", host=server.url).generate(QUESTION, hits)
    assert isinstance(info.value, PagesightError) and "HTTP 500" in str(info.value)
    with pytest.raises(GenerationError, match="llama runner process has terminated"):
        list(OllamaGenerator("crashing", host=server.url).stream(QUESTION, hits))


def test_a_connection_dropped_mid_stream_is_a_pagesight_error(server, hits):
    received: list[str] = []
    with pytest.raises(GenerationError, match="lost the Ollama server"):
        for piece in OllamaGenerator("dropping", host=server.url).stream(QUESTION, hits):
            received.append(piece)
    assert received == ["Compost ", "improves "]  # what came before the drop was handed out


def test_constructor_is_cheap_and_check_runs_once_across_threads(server):
    gen = OllamaGenerator("llama3.2", host=server.url)
    assert server.requests == []
    threads = [threading.Thread(target=gen.check) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gen.check() is gen
    assert [r.path for r in server.requests] == ["/api/show"]


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ConfigurationError, match="`max_pixels`"):
        OllamaGenerator("llama3.2", max_pixels=0)
    with pytest.raises(ConfigurationError, match="`model`"):
        OllamaGenerator(" ")


def test_make_generator_builds_an_ollama_generator(server, hits):
    gen = make_generator("ollama:qwen2.5vl:3b", ollama_host=server.url, max_images=1)
    assert isinstance(gen, OllamaGenerator) and gen.model == "qwen2.5vl:3b"
    gen.generate(QUESTION, hits)
    assert len(server.chat_images[-1]) == 1


# -- end to end ---------------------------------------------------------------------------------------


def test_answer_over_an_indexed_pdf_cites_the_right_page_and_streams(server, tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the image-only page
        ingest([corpus["garden"].parent], store, encoder, show_progress=False)
    searcher = PageSearcher(store, encoder)
    gen = OllamaGenerator("qwen2.5vl:3b", host=server.url, max_pixels=50_000)
    pieces: list[str] = []
    result = answer("How often should I turn my compost heap?", searcher, gen, k=3, on_token=pieces.append)

    assert result.text == "Compost improves soil structure. [garden.pdf p.2]"
    assert len(pieces) >= 2 and "".join(pieces) == result.text
    assert [(c.source, c.page) for c in result.citations] == [(str(corpus["garden"]), 2)]
    assert result.citations[0].image is not None and Path(result.citations[0].image).is_file()
    assert result.unmatched_citations == []
    sizes = server.chat_images[-1]
    assert len(sizes) == 3 and all(w * h <= 50_000 for w, h in sizes)  # every page has a rendered image
    store.close()


def test_cli_ask_with_an_ollama_vision_model_streams_and_lists_sources(server, tmp_path, corpus, capsys):
    from pagesight.cli import main

    store = tmp_path / "store"
    assert main(["index", str(corpus["garden"]), "--store", str(store), "-q"]) == 0
    capsys.readouterr()
    argv = ["ask", "How often should I turn my compost heap?", "--store", str(store), "-k", "2"]
    code = main(
        [*argv, "--generator", "ollama:qwen2.5vl:3b", "--ollama-host", server.url, "--max-images", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("Compost improves soil structure. [garden.pdf p.2]")
    assert f"{corpus['garden']} p.2" in out.split("Sources:", 1)[1]
    assert len(server.chat_images[-1]) == 1

    code = main([*argv, "--generator", "ollama:nope", "--ollama-host", server.url])
    _, err = capsys.readouterr()
    assert code == 1 and "`ollama pull nope`" in err

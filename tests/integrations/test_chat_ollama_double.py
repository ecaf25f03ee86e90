"""LangChain's ``ChatOllama`` against the Ollama-protocol double: the double speaks real Ollama chat."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from ollama_double import ChatModel, OllamaDouble
from PIL import Image

from pagesight.pipelines.answer import resolve_citations
from pagesight.pipelines.prompt import build_prompt
from pagesight.retrieval.store import Hit

pytest.importorskip("langchain_ollama")

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402
from langchain_ollama import ChatOllama  # noqa: E402

PAGES = [
    Hit("a-1", "/docs/garden.pdf", 1, "Tomatoes need full sun. Water them daily.", None, 0, 0, "0" * 64, 0.8),
    Hit(
        "a-2",
        "/docs/garden.pdf",
        2,
        "Compost improves soil. Turn the heap every two weeks.",
        None,
        0,
        0,
        "0" * 64,
        0.7,
    ),
]
QUESTION = "How often do I turn the compost heap?"
REPLY = "Compost improves soil. [garden.pdf p.2]"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[OllamaDouble]:
    chat_models = {"llama3.2": ChatModel(), "qwen2.5vl:3b": ChatModel(vision=True, family="qwen25vl")}
    with OllamaDouble({}, chat_models=chat_models) as server:
        yield server


def _messages() -> list[SystemMessage | HumanMessage]:
    prompt = build_prompt(QUESTION, PAGES)
    return [SystemMessage(prompt.system), HumanMessage(prompt.user)]


def _png_data_url(size: tuple[int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_invoke_returns_the_reply_and_it_resolves_to_a_retrieved_page(chat_server):
    model = ChatOllama(model="llama3.2", base_url=chat_server.url, temperature=0, validate_model_on_init=True)
    reply = model.invoke(_messages())
    assert reply.content == REPLY
    assert reply.response_metadata["done_reason"] == "stop"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] >= 2
    body = chat_server.chats[-1]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["options"]["temperature"] == 0
    cited = resolve_citations(QUESTION, str(reply.content), PAGES).citations
    assert [(c.source, c.page) for c in cited] == [("/docs/garden.pdf", 2)]


def test_stream_hands_out_word_pieces_that_join_to_the_reply(chat_server):
    model = ChatOllama(model="llama3.2", base_url=chat_server.url)
    chunks = [str(c.content) for c in model.stream(_messages())]
    assert len([c for c in chunks if c]) >= 2
    assert "".join(chunks) == REPLY
    assert chat_server.chats[-1]["stream"] is True


def test_an_image_content_block_reaches_api_chat_as_images(chat_server):
    model = ChatOllama(model="qwen2.5vl:3b", base_url=chat_server.url)
    message = HumanMessage(
        content=[
            {"type": "text", "text": "What colour is this page?"},
            {"type": "image_url", "image_url": _png_data_url((64, 48))},
        ]
    )
    reply = model.invoke([message])
    assert reply.content == "The pages do not say."
    assert chat_server.chat_images[-1] == [(64, 48)]
    sent = chat_server.chats[-1]["messages"][-1]
    assert sent["content"].strip() == "What colour is this page?" and len(sent["images"]) == 1


def test_a_text_model_refuses_images_like_ollama(chat_server):
    import ollama

    model = ChatOllama(model="llama3.2", base_url=chat_server.url)
    message = HumanMessage(
        content=[{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": _png_data_url((8, 8))}]
    )
    with pytest.raises(ollama.ResponseError, match="does not support images"):
        model.invoke([message])


def test_validate_model_on_init_fails_for_a_model_not_pulled(chat_server):
    with pytest.raises(ValueError, match="not found"):
        ChatOllama(model="mistral-nope", base_url=chat_server.url, validate_model_on_init=True)


def test_pages_with_images_from_the_pagesight_prompt(chat_server, tmp_path: Path):
    """The same prompt as OllamaGenerator, images attached through LangChain content blocks."""
    image = tmp_path / "p2.png"
    Image.new("RGB", (120, 90), (0, 0, 255)).save(image)
    pages = [PAGES[0], Hit("a-2", "/docs/garden.pdf", 2, PAGES[1].text, image, 120, 90, "0" * 64, 0.7)]
    prompt = build_prompt(QUESTION, pages, images=True)
    blocks = [{"type": "text", "text": prompt.user}] + [
        {
            "type": "image_url",
            "image_url": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(),
        }
        for p in prompt.images
    ]
    reply = ChatOllama(model="qwen2.5vl:3b", base_url=chat_server.url).invoke(
        [SystemMessage(prompt.system), HumanMessage(content=blocks)]
    )
    assert reply.content == REPLY
    assert chat_server.chat_images[-1] == [(120, 90)]


def test_citing_reply_picks_the_page_sharing_most_question_words_first_on_ties():
    from ollama_double import citing_reply

    user = build_prompt("tomatoes compost", PAGES).user  # one shared word with each page: the first wins
    assert citing_reply([{"role": "user", "content": user}]) == "Tomatoes need full sun. [garden.pdf p.1]"
    assert citing_reply([{"role": "user", "content": "Question: anything?"}]) == "The pages do not say."


def test_api_generate_streams_and_checks_images_like_chat(chat_server):
    import ollama

    client = ollama.Client(host=chat_server.url)
    prompt = build_prompt(QUESTION, PAGES)
    whole = client.generate("llama3.2", prompt=prompt.user, system=prompt.system)
    assert whole.response == REPLY and whole.done_reason == "stop"
    pieces = [r.response for r in client.generate("llama3.2", prompt=prompt.user, stream=True)]
    assert len(pieces) >= 3 and "".join(pieces) == REPLY
    png = base64.b64decode(_png_data_url((16, 12)).split(",", 1)[1])
    client.generate("qwen2.5vl:3b", prompt="colour?", images=[png])
    assert chat_server.generate_images[-1] == [(16, 12)]
    with pytest.raises(ollama.ResponseError, match="does not support images") as info:
        client.generate("llama3.2", prompt="colour?", images=[png])
    assert info.value.status_code == 400

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pagesight.retrieval.store import PageStore
    from tests.ollama_double import OllamaDouble


def write_pdf(path: Path, pages: list[str | None]) -> Path:
    """A real PDF with one page per entry: text, or ``None`` for an image-only page (a drawing)."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=400, height=500)
        if text is None:
            page.draw_rect(pymupdf.Rect(50, 50, 350, 450), color=(0, 0, 1), fill=(0.5, 0.7, 1))
        else:
            page.insert_textbox(pymupdf.Rect(30, 30, 370, 470), text, fontsize=11)
    doc.save(str(path))
    doc.close()
    return path


GARDEN = [
    "Tomatoes need full sun and regular watering. Stake the plants so the fruit stays off the soil.",
    "Compost improves soil structure. Turn the heap every two weeks to keep it aerobic and warm.",
]
NETWORK = [
    "To configure a static IP address, edit the interfaces file and restart the networking service.",
    "A firewall filters packets. Use nftables rules to allow SSH on port 22 and drop other traffic.",
    None,
]


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    return {
        "garden": write_pdf(docs / "garden.pdf", GARDEN),
        "network": write_pdf(docs / "network.pdf", NETWORK),
    }


# -- the answering pipelines (test_langchain_chain.py, test_llamaindex_engine.py) -----------------
# Modules that define their own ``docs``, ``store`` or ``server`` fixtures use theirs.

TEXT, VISION, INVENTOR = "llama3.2", "qwen2.5vl:3b", "inventor"
"""The Ollama double's chat models: text-only, vision, and one that invents a citation."""
COMPOST = "How often should the compost heap be turned?"
FIREWALL = "which firewall rules allow ssh on port 22"
TOMATOES = "What do tomatoes need to grow?"


def _inventing(messages: list[dict[str, Any]]) -> str:
    from tests.ollama_double import citing_reply

    return citing_reply(messages) + " See also [made-up.pdf p.9]."


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """garden.pdf and network.pdf, written once per module."""
    folder = tmp_path_factory.mktemp("docs")
    return {
        "garden": write_pdf(folder / "garden.pdf", GARDEN),
        "network": write_pdf(folder / "network.pdf", NETWORK),
    }


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, docs: dict[str, Path], encoder: Any
) -> Iterator[PageStore]:
    """An embedded store holding ``docs`` (MiniLM vectors), shared by a module's tests."""
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.store import PageStore

    store = PageStore(tmp_path_factory.mktemp("store") / "store")
    assert ingest(list(docs.values()), store, encoder, show_progress=False).ok
    yield store
    store.close()


@pytest.fixture(scope="module")
def _server() -> Iterator[OllamaDouble]:
    from tests.ollama_double import ChatModel, OllamaDouble

    models = {TEXT: ChatModel(), VISION: ChatModel(vision=True), INVENTOR: ChatModel(respond=_inventing)}
    with OllamaDouble({}, chat_models=models) as server:
        yield server


@pytest.fixture
def server(_server: OllamaDouble) -> OllamaDouble:
    """The module's Ollama double with its request log cleared."""
    _server.clear()
    return _server

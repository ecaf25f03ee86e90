"""Fixtures for the adapter tests: MiniLM loaded once for the session, an Ollama double."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ollama_double import OllamaDouble  # noqa: E402

from pagesight.models import MatryoshkaEncoder  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def minilm() -> MatryoshkaEncoder:
    """Loads MiniLM once; while it lives, every MiniLM encoder the tests build shares its weights."""
    return MatryoshkaEncoder(device="cpu").load()


@pytest.fixture(scope="session")
def _ollama_server(minilm: MatryoshkaEncoder) -> Iterator[OllamaDouble]:
    model = minilm._backend.model  # type: ignore[attr-defined]
    server = OllamaDouble({"all-minilm": model, "nomic-minilm": model})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ollama_server(_ollama_server: OllamaDouble) -> Any:
    _ollama_server.clear()
    return _ollama_server


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in ColEmbed model (NVIDIA remote-code methods, random weights) saved to a folder."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_colembed"))
    from colembed_builders import build_standin

    return build_standin(tmp_path_factory.mktemp("standin") / "model")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP saved as a sentence-transformers folder: texts and images in one 12-d space."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_embed_vl"))
    from vl_builders import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "model")


@pytest.fixture(scope="session")
def standin_embed_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in embed-vl (NVIDIA remote-code methods, "query: "/"passage: " prefixes) in a folder."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_embed_vl"))
    from vl_builders import build_standin_embed_vl

    return build_standin_embed_vl(tmp_path_factory.mktemp("embed-vl") / "model")


@pytest.fixture(scope="session")
def standin_rerank_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny stand-in rerank-vl (NVIDIA remote-code model + processor) saved to a folder.

    Its logit = distinct query words found in the text + 2 x (redness of the page image) + <= 0.01
    noise, so a pure red page outranks a page matching one query word.
    """
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_rerank_vl"))
    from rerank_builders import build_standin_rerank_vl

    return build_standin_rerank_vl(tmp_path_factory.mktemp("rerank") / "model")


@pytest.fixture(scope="session")
def rerank_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PageStore (embedded Chroma) of ``rerank_pages.PAGES``, its images in the store's folder."""
    pytest.importorskip("chromadb")
    from rerank_pages import build_store

    store = build_store(tmp_path_factory.mktemp("rerank-store"))
    yield store
    store.close()


@pytest.fixture(scope="session")
def page_docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """garden.pdf and network.pdf (``page_index.write_docs``), written once per session."""
    from tests.integrations.page_index import write_docs

    return write_docs(tmp_path_factory.mktemp("page-docs"))


@pytest.fixture(scope="session")
def page_store(tmp_path_factory: pytest.TempPathFactory, page_docs: dict[str, Path]) -> Path:
    """A MiniLM store folder of ``page_docs`` written through ``Index.create`` (offline profile), once."""
    pytest.importorskip("chromadb")
    from tests.integrations.page_index import build_index

    return build_index(tmp_path_factory.mktemp("page-index"), page_docs)

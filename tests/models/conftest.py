"""Fixtures for the encoder tests: real MiniLM (loaded once), tiny random models, an Ollama double."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ollama_double import OllamaDouble  # noqa: E402
from tiny_models import TOKENIZER_FILES, build_tiny_model, minilm_path  # noqa: E402,F401

from pagesight.models import MatryoshkaEncoder  # noqa: E402


@pytest.fixture(scope="session")
def minilm() -> MatryoshkaEncoder:
    """The offline default encoder, loaded once; its weights stay cached for every other MiniLM encoder."""
    return MatryoshkaEncoder(device="cpu").load()


@pytest.fixture(scope="session")
def minilm_st(minilm: MatryoshkaEncoder) -> Any:
    """The loaded ``SentenceTransformer`` behind :func:`minilm` (its Normalize module removed)."""
    return minilm._backend.model  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def tiny_nomic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT whose folder name marks it Nomic-family (Nomic prefixes and truncation)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-nomic-embed")


@pytest.fixture(scope="session")
def tiny_plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny random BERT in a folder with a plain name (no prefixes)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-embed")


@pytest.fixture(scope="session")
def _ollama_server(minilm_st: Any) -> Iterator[OllamaDouble]:
    server = OllamaDouble({"all-minilm": minilm_st, "nomic-minilm": minilm_st, "nomic-embed-text": minilm_st})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ollama_server(_ollama_server: OllamaDouble) -> OllamaDouble:
    """The Ollama double serving MiniLM as ``all-minilm``, ``nomic-minilm`` and (wrongly sized)
    ``nomic-embed-text``; records cleared."""
    _ollama_server.clear()
    _ollama_server.context_length = None
    return _ollama_server

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

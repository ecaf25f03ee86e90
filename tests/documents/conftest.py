"""Fixtures for the document loaders: PDFs and images generated in the test, a loopback HTTP server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from pagesight.documents import Renderer

_TESTS = str(Path(__file__).resolve().parents[1])  # tests/ holds http_server.py
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from doc_factories import RENDERERS  # noqa: E402
from http_server import LoopbackHTTPServer  # noqa: E402


@pytest.fixture(params=RENDERERS)
def renderer(request: pytest.FixtureRequest) -> Renderer:
    """Each PDF test runs with both renderers."""
    return cast(Renderer, request.param)


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """Write bytes to ``tmp_path/name`` and return the path."""

    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """An empty folder for rendered pages."""
    path = tmp_path / "pages"
    path.mkdir()
    return path


@pytest.fixture
def http_server() -> Iterator[LoopbackHTTPServer]:
    """A running loopback HTTP server; add routes with ``http_server.add(path, Route(...))``."""
    with LoopbackHTTPServer() as server:
        yield server

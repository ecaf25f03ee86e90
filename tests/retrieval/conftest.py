"""Fixtures for the retrieval tests: a real Chroma server, stores on both backends, generated pages."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.retrieval.store import PageStore  # imports chromadb only when a store is used

_SERVER_START_TIMEOUT_S = 60.0


def _chroma_executable() -> str | None:
    beside_python = Path(sys.executable).parent / "chroma"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("chroma")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chroma server on loopback for the session; yields its URL.

    Started as ``chroma run --path <tmp> --host 127.0.0.1 --port <free port>``; skipped when the
    ``chroma`` CLI is missing. Tests that use it need ``@pytest.mark.enable_socket``.
    """
    exe = _chroma_executable()
    if exe is None:
        pytest.skip("the `chroma` CLI (pip install chromadb) is not on PATH or beside the interpreter")
    import httpx

    data = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log_path = data / "server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    cmd = [exe, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"chroma server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}"
                )
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma server did not answer within {_SERVER_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.enable_socket)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which Chroma backend a store test runs against."""
    return str(request.param)


@pytest.fixture
def open_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], PageStore]]:
    """Factory opening a new :class:`PageStore` on the same location each call (for reopening)."""
    stores: list[PageStore] = []
    url = request.getfixturevalue("chroma_server") if backend == "server" else None
    collection = f"test-{uuid.uuid4().hex[:12]}"

    def factory() -> PageStore:
        if url is None:
            store = PageStore(tmp_path / "store")
        else:
            store = PageStore(url=url, image_dir=tmp_path / "store" / "images", collection=collection)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], PageStore]) -> PageStore:
    """A fresh, empty store on the backend under test."""
    return open_store()


@pytest.fixture
def make_pages(tmp_path: Path) -> Callable[..., list[Page]]:
    """Factory for the pages of one source, with tiny PNG files in a staging folder.

    ``make_pages(source, n, version="v1", images=True, texts=None)``: the content hash derives from
    (source, version), so another ``version`` is a changed file.
    """
    from PIL import Image

    staging = tmp_path / "staging"

    def factory(
        source: str,
        n: int,
        *,
        version: str = "v1",
        images: bool = True,
        texts: list[str] | None = None,
    ) -> list[Page]:
        content_hash = hashlib.sha256(f"{source}|{version}".encode()).hexdigest()
        folder = staging / uuid.uuid4().hex
        folder.mkdir(parents=True)
        pages = []
        for i in range(1, n + 1):
            image = None
            if images:
                image = folder / f"page-{i}.png"
                Image.new("RGB", (8, 6), (i % 256, 40, 80)).save(image)
            text = texts[i - 1] if texts is not None else f"{source} page {i} {version}"
            pages.append(Page(source, i, text, image, 8 if images else 0, 6 if images else 0, content_hash))
        return pages

    return factory


def unit_vectors(n: int, dims: int, seed: int) -> np.ndarray:
    """``n`` random float32 unit vectors."""
    v = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def vectors() -> Callable[[int, int], np.ndarray]:
    """Factory for random unit vectors: ``vectors(n, dims)``, a new seed each call."""
    counter = iter(range(1_000_000))

    def factory(n: int, dims: int) -> np.ndarray:
        return unit_vectors(n, dims, seed=next(counter))

    return factory

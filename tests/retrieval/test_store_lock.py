"""One writing process per embedded store: a second one gets a clear error, never a corrupt store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import StoreError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the inter-process lock is fcntl.flock (POSIX)")

DENSE = EmbedderInfo("test/dense", "r1", 4, "dense-text")
LATE = EmbedderInfo("test/late", "r1", 4, "late-interaction")

# The writer: opens the store, writes one source, reports, then keeps the store open until told.
_WRITER = textwrap.dedent(
    """
    import hashlib, os, sys
    import numpy as np
    from pagesight.documents.page import Page
    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

    kind, path = sys.argv[1], sys.argv[2]
    h = hashlib.sha256(b"writer.pdf").hexdigest()
    pages = [Page("writer.pdf", i, f"page {i}", None, 0, 0, h) for i in (1, 2)]
    rng = np.random.default_rng(0)
    if kind == "multi":
        store = MultiVectorStore(path)
        info = EmbedderInfo("test/late", "r1", 4, "late-interaction")
        store.add_source(pages, [rng.normal(size=(3, 4)) for _ in pages], embedder=info)
    else:
        store = PageStore(path)
        info = EmbedderInfo("test/dense", "r1", 4, "dense-text")
        store.add_source(pages, rng.normal(size=(2, 4)), embedder=info)
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    store.close()
    print("closed", flush=True)
    sys.stdin.readline()
    """
)


class Writer:
    def __init__(self, kind: str, path: Path) -> None:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, kind, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.pid = self._expect("ready")

    def _expect(self, word: str) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != word:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"writer did not say {word!r}: {line}\n{err}")
        return int(line[1]) if len(line) > 1 else 0

    def close_store(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        self._expect("closed")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)  # also closes the pipes


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    started: list[Writer] = []
    yield started
    for w in started:
        w.stop()


def _lock_state(path: Path) -> str:
    """'held' or 'free', as another process finds the store's lock file."""
    probe = (
        "import fcntl, sys; f = open(sys.argv[1], 'a+b')\n"
        "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
        "except OSError:\n    print('held')"
    )
    cmd = [sys.executable, "-c", probe, str(path / "pagesight.lock")]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def _pages(source: str, n: int) -> list[Page]:
    import hashlib

    h = hashlib.sha256(source.encode()).hexdigest()
    return [Page(source, i, f"{source} page {i}", None, 0, 0, h) for i in range(1, n + 1)]


@pytest.fixture(autouse=True)
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PageStore, "lock_timeout", 0.3)


def test_second_process_writing_an_embedded_store_gets_a_clear_error(
    tmp_path: Path, writers: list[Writer]
) -> None:
    path = tmp_path / "store"
    writer = Writer("dense", path)
    writers.append(writer)
    store = PageStore(path)
    try:
        with pytest.raises(StoreError) as err:
            store.add_source(_pages("mine.pdf", 1), np.ones((1, 4)), embedder=DENSE)
        message = str(err.value)
        assert f"is being written by another process (pid {writer.pid})" in message
        assert str(path) in message and "Chroma server" in message
        with pytest.raises(StoreError, match=f"pid {writer.pid}"):
            store.delete_source("writer.pdf")
        # readers go on while the other process writes; nothing of ours was written
        assert store.ids() == [p.id for p in _pages("writer.pdf", 2)]
        assert {s.source for s in store.sources()} == {"writer.pdf"}
        writer.close_store()  # the writer is done: now this process may write
        store.add_source(_pages("mine.pdf", 1), np.ones((1, 4)), embedder=DENSE)
        assert store.count() == 3
    finally:
        store.close()


def test_the_lock_is_held_until_close_and_shared_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "store"
    first, second = PageStore(path), PageStore(path)
    first.add_source(_pages("a.pdf", 1), np.ones((1, 4)), embedder=DENSE)
    second.add_source(_pages("b.pdf", 1), np.ones((1, 4)), embedder=DENSE)  # same process: shared
    assert _lock_state(path) == "held"
    first.close()
    assert _lock_state(path) == "held"
    second.close()
    assert _lock_state(path) == "free"


def test_a_killed_writer_leaves_the_store_writable(tmp_path: Path, writers: list[Writer]) -> None:
    path = tmp_path / "store"
    writer = Writer("dense", path)
    writers.append(writer)
    os.kill(writer.pid, signal.SIGKILL)
    writer.proc.wait(timeout=30)
    with PageStore(path) as store:
        store.add_source(_pages("mine.pdf", 2), np.ones((2, 4)), embedder=DENSE)
        assert store.count() == 4


def test_multivector_store_refuses_before_touching_the_tokens(tmp_path: Path, writers: list[Writer]) -> None:
    path = tmp_path / "store"
    writer = Writer("multi", path)
    writers.append(writer)
    store = MultiVectorStore(path)
    try:
        before = store.token_store.ids()
        with pytest.raises(StoreError, match=f"being written by another process \\(pid {writer.pid}\\)"):
            store.add_source(_pages("mine.pdf", 1), [np.eye(4)[:2]], embedder=LATE)
        assert store.token_store.ids() == before  # no tokens written, none of the writer's dropped
        assert len(before) == 2
        assert store.last_reconcile is not None and not store.last_reconcile.fixed
    finally:
        store.close()


def test_a_store_dropped_without_close_gives_the_lock_back(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "store"
    store = PageStore(path)
    store.add_source(_pages("a.pdf", 1), np.ones((1, 4)), embedder=DENSE)
    assert _lock_state(path) == "held"
    del store
    gc.collect()
    assert _lock_state(path) == "free"

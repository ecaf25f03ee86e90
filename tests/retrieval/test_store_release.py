"""A store dropped without ``close()`` releases its database files.

Chroma keeps each embedded database (SQLite handles, HNSW segment files) open in a process-wide
cache until its last client closes; a long-lived process that opens many stores and forgets
``close()`` used to keep every one of them open.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import numpy as np

from pagesight.documents.page import Page
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import PageStore

INFO = EmbedderInfo(model="bm25-test/toy", revision=None, dimensions=4, kind="dense-text")


def _open_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


def _collect() -> None:
    # the first pass runs the finalizers that close the clients; the objects those held (Chroma's
    # Rust bindings, in reference cycles) go in the next
    gc.collect()
    gc.collect()


def _fill(folder: Path) -> None:
    store = PageStore(folder)
    page = Page("a.pdf", 1, "ssh port forwarding", None, 0, 0, "0" * 64)
    store.add_source([page], np.ones((1, 4), dtype=np.float32), embedder=INFO)
    assert store.count() == 1
    # no close(): the store goes out of scope here


def test_a_store_dropped_without_close_releases_its_files(tmp_path: Path) -> None:
    if not Path("/proc/self/fd").is_dir():
        import pytest

        pytest.skip("needs /proc to list open files")
    for n in range(3):
        _fill(tmp_path / f"store{n}")
    _collect()
    assert _open_under(tmp_path) == []
    with PageStore(tmp_path / "store0") as again:  # and the data is all there
        assert again.count() == 1
    _collect()
    assert _open_under(tmp_path) == []

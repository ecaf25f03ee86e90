"""A page store's BM25 index: where it lives, how it follows writes, how a stale one is found.

:class:`~pagesight.retrieval.store.PageStore` calls this module around every write; searches ask
:meth:`StoreBM25.index` for an index that agrees with the pages (see
:mod:`pagesight.retrieval.bm25` for the index itself).

Embedded stores keep the index in ``<store>/bm25/``. Writers already hold the store's write lock;
before a write changes records they create ``bm25/pending`` (durably), and when the write is done
they apply its adds and deletes to the index (one manifest replace) and remove the marker. A write
that fails or is killed in between leaves the marker. An index is trusted when no marker is there,
it records this collection's id, and it holds as many pages as the collection; otherwise it is
rebuilt from the pages (under the write lock, by the next writer or the next search that finds
the lock free). A search while another process holds the write lock uses the last saved index
(the writer saves a newer one when its write completes, and readers reload it).

Server stores (Chroma over HTTP) have no folder and no write lock: the index is a local cache in
``$XDG_CACHE_HOME/pagesight/bm25/<host>-<port>[/<tenant>/<database>]/<collection>``, shared by the
processes of this machine through a lock file. The collection's metadata carries a stamp
(``pagesight:bm25_stamp``) that every pagesight write changes twice, before it changes records and
after; the cache records the stamp it is current for. A search compares the two (one small request)
and rebuilds the cache when they differ: after writes from another machine, or a write killed
midway. The writer's own cache follows its writes incrementally. Two machines writing one server at
the same moment can leave one's cache missing the other's pages until the next write or search
that sees a new stamp (the stamp check is not a transaction).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.errors import StoreError
from pagesight.retrieval.bm25 import SegmentedBM25, tokenizer_options
from pagesight.retrieval.store._writelock import FileLockHold

if TYPE_CHECKING:
    from pagesight.retrieval.store.pages import PageStore
    from pagesight.types import Page

__all__ = ["BM25_FOLDER", "PENDING", "STAMP_KEY", "StoreBM25"]

logger = logging.getLogger(__name__)

BM25_FOLDER = "bm25"
PENDING = "pending"
STAMP_KEY = "pagesight:bm25_stamp"

_folder_locks: dict[str, threading.Lock] = {}  # one per index folder: store objects of one process share it
_folder_locks_guard = threading.Lock()


def _folder_lock(folder: Path) -> threading.Lock:
    with _folder_locks_guard:
        return _folder_locks.setdefault(str(folder.absolute()), threading.Lock())


class StoreBM25:
    """The BM25 side of one :class:`~pagesight.retrieval.store.PageStore` (one per store object)."""

    def __init__(self, store: PageStore) -> None:
        self._store = store
        folder = store.backend.folder
        self.embedded = folder is not None
        self.folder: Path = (
            folder / BM25_FOLDER if folder is not None else store.backend.local_dir(BM25_FOLDER)
        )
        self._index: SegmentedBM25 | None = None  # the last index handed to searches
        self._server_stamp: Any = None  # server stores: the stamp ``_index`` is current for
        self._depth = 0
        self._touched = False
        self._stale = False
        self._changes: dict[str, str | None] = {}  # id -> new text, or None when deleted

    # -- paths -------------------------------------------------------------------------------------

    @property
    def pending_path(self) -> Path:
        return self.folder / PENDING

    def _cache_lock(self) -> FileLockHold:
        return FileLockHold(self.folder / "cache.lock", f"BM25 cache {self.folder}")

    # -- writes ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One write of the store (nested writes join the outermost); the index follows at the end."""
        self._depth += 1
        ok = False
        try:
            yield
            ok = True
        finally:
            self._depth -= 1
            if self._depth == 0:
                touched, changes, stale = self._touched, self._changes, self._stale
                self._touched, self._changes, self._stale = False, {}, False
                if touched and ok:
                    try:
                        self._commit(changes, stale)
                    except (OSError, StoreError) as e:  # the records are written: BM25 catches up later
                        logger.warning(
                            "store %s: could not update its BM25 index (%s); it is rebuilt on next use",
                            self._store.location,
                            e,
                        )
                elif touched:
                    logger.info("store %s: a write failed; BM25 is rebuilt on next use", self._store.location)

    def touch(self) -> None:
        """Called before a write changes records: mark the index as being updated."""
        if self._depth == 0 or self._touched:
            return
        self._touched = True
        try:
            if self.embedded:
                self._stale = self.pending_path.exists()
                self.folder.mkdir(parents=True, exist_ok=True)
                _write_marker(self.pending_path)
                try:
                    current = SegmentedBM25.open(self.folder)
                except StoreError:
                    current = None
                if current is None:
                    if self._store.backend.count() == 0:
                        SegmentedBM25.create(self.folder, info=self._info())
                    else:
                        self._stale = True
            else:
                stamp = self._read_stamp()
                cached = self._open_cache()
                self._stale = cached is None or cached.info.get("stamp") != stamp or not self._fits(cached)
                self._write_stamp(f"writing-{uuid.uuid4().hex}")
        except OSError as e:
            raise StoreError(f"store {self._store.location}: could not mark its BM25 index: {e}") from e

    def added(self, pages: Sequence[Page]) -> None:
        for p in pages:
            self._changes[p.id] = p.text

    def deleted(self, ids: Sequence[str]) -> None:
        for i in ids:
            self._changes[i] = None

    def _commit(self, changes: dict[str, str | None], stale: bool) -> None:
        with _folder_lock(self.folder):  # two store objects of one process writing one folder
            self._commit_locked(changes, stale)

    def _commit_locked(self, changes: dict[str, str | None], stale: bool) -> None:
        adds = [(i, t) for i, t in changes.items() if t is not None]
        deletes = [i for i, t in changes.items() if t is None]
        if self.embedded:
            index = None if stale else self._open_fitting()
            if index is None:
                index = self._rebuild()
            else:
                index.apply(adds, deletes)
            self.pending_path.unlink(missing_ok=True)
            self._index = index
            return
        stamp = uuid.uuid4().hex
        with self._cache_held():
            index = None if stale else self._open_cache()
            if index is not None and self._fits(index):
                index.apply(adds, deletes, info={**self._info(), "stamp": stamp})
            else:
                index = self._rebuild(stamp)
        self._write_stamp(stamp)
        self._index, self._server_stamp = index, stamp

    # -- reads -------------------------------------------------------------------------------------

    def index(self) -> SegmentedBM25:
        """An index that agrees with the store's pages (loaded, reloaded or rebuilt as needed)."""
        if self.embedded:
            current = self._index
            if current is not None and not current.changed() and not self.pending_path.exists():
                return current
            with self._store._lock:
                return self._load_embedded()
        stamp = self._read_stamp()
        current = self._index
        if current is not None and self._server_stamp == stamp and not current.changed():
            return current
        with self._store._lock:
            cached = self._open_cache()
            if cached is None or cached.info.get("stamp") != stamp or not self._fits(cached, count=True):
                with self._cache_held():
                    cached = self._rebuild(stamp)
            self._index, self._server_stamp = cached, stamp
            return cached

    def _load_embedded(self) -> SegmentedBM25:
        try:
            held = self._store.write_lock_if_free()
            free = held.__enter__()
        except (OSError, StoreError) as e:  # a read-only store folder: no lock file to take
            logger.debug("store %s: BM25 without the write lock (%s)", self._store.location, e)
            index = self._open_fitting(count=True)
            return index if index is not None and not self.pending_path.exists() else self._build(None)
        try:
            return self._load_held(free)
        finally:
            held.__exit__(None, None, None)

    def _load_held(self, free: bool) -> SegmentedBM25:
        if not free:  # another process is writing: its last saved index, or one in memory
            current = self._index
            if current is not None and not current.changed():
                return current
            try:
                saved = SegmentedBM25.open(self.folder)
            except StoreError:
                saved = None
            if saved is None:
                return self._build(None)
            self._index = saved
            return saved
        index = None if self.pending_path.exists() else self._open_fitting(count=True)
        if index is None:
            index = self._rebuild()
            self.pending_path.unlink(missing_ok=True)
        self._index = index
        return index

    def close(self) -> None:
        self._index = None
        self._server_stamp = None

    # -- helpers -----------------------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        return {"collection": self._store.backend.identity()}

    def _fits(self, index: SegmentedBM25, *, count: bool = False) -> bool:
        """Same collection and tokenizer (and, with ``count``, as many pages as the collection)."""
        if index.info.get("collection") != self._store.backend.identity():
            return False
        if index.options != tokenizer_options():
            return False
        return not count or len(index) == self._store.backend.count()

    def _open_fitting(self, *, count: bool = False) -> SegmentedBM25 | None:
        try:
            index = SegmentedBM25.open(self.folder)
        except StoreError as e:
            logger.warning("%s; rebuilding it", e)
            return None
        if index is None or not self._fits(index, count=count):
            return None
        return index

    def _open_cache(self) -> SegmentedBM25 | None:
        try:
            return SegmentedBM25.open(self.folder)
        except StoreError:
            return None

    def _pages(self) -> list[tuple[str, str]]:
        return [(str(i), doc or "") for i, doc, _ in self._store._scan(None, include=["documents"])]

    def _build(self, folder: Path | None, stamp: Any = None) -> SegmentedBM25:
        info = self._info()
        if not self.embedded:
            info["stamp"] = stamp
        pages = self._pages()
        logger.info("building the BM25 index of %s (%d pages)", self._store.location, len(pages))
        return SegmentedBM25.build(folder, pages, info=info)

    def _rebuild(self, stamp: Any = None) -> SegmentedBM25:
        return self._build(self.folder, stamp)

    @contextlib.contextmanager
    def _cache_held(self) -> Iterator[None]:
        lock = self._cache_lock()
        lock.take(60.0, "another process on this machine is updating the BM25 cache; try again")
        try:
            yield
        finally:
            lock.release()

    def _read_stamp(self) -> Any:
        store = self._store
        with store._call("reading the collection"):
            store._open()
            return store.backend.read_metadata().get(STAMP_KEY)

    def _write_stamp(self, stamp: str) -> None:
        backend = self._store.backend
        with self._store._call("writing the collection's metadata"):
            meta = backend.read_metadata()
            backend.write_metadata({**meta, STAMP_KEY: stamp})


def _write_marker(path: Path) -> None:
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    from pagesight.retrieval.store._journal import fsync_dir

    fsync_dir(path.parent)

"""Token matrices of late-interaction pages: append-only segment files plus a SQLite index.

Use::

    from pagesight.retrieval.store.tokens import TokenStore

    tokens = TokenStore("index/tokens", dtype="float16")
    tokens.put(["a-p1", "a-p2"], [m1, m2])        # m: float (n_tokens, dim), one per page
    tokens.get(["a-p2"])                          # [float32 (n_tokens, dim)]
    ids, packed = tokens.packed(["a-p1", "a-p2"]) # PackedTokens for maxsim(), memory-mapped
    tokens.delete(["a-p1"]); tokens.compact()     # space comes back at compaction

Layout of the folder::

    index.sqlite3          page id -> (segment, first row, n_tokens, dim, dtype); segments; settings
    segments/000001.bin    raw rows, (rows, dim) of the store's dtype, C order, appended to only
    segments/000001.scl    int8 stores: one float32 scale per row
    LOCK, LOCK.pid         lock file serializing writers across processes (filelock), holder's pid

Why SQLite (WAL mode, ``synchronous=FULL``) for the index: a ``put`` of many pages, a ``delete`` or the
index swap of a compaction is one transaction, so after a crash the index is exactly the state before
or after it, never half; readers in other processes see consistent snapshots while a writer works;
it ships with Python. An append-only log would need its own checksums, recovery scan and rewrite.
The index must live on a local filesystem (WAL needs shared memory).

Crash semantics: ``put`` appends the rows at the segment's committed end, fsyncs the segment file
(and the folder when a file was created), and only then commits the index rows. A crash before the
commit leaves bytes past the committed end that no index row points at; the next write truncates
them away. A crash during :meth:`TokenStore.compact` leaves new segment files the index does not
know; they are deleted the next time the store is opened for writing. So every committed index row
points at durable bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import InvalidVectorError, StoreError, StoreMismatchError
from pagesight.retrieval.store._images import resolve_stored_path
from pagesight.retrieval.store._journal import fsync_dir
from pagesight.retrieval.store._writelock import FileLockHold

if TYPE_CHECKING:
    from pagesight.retrieval.maxsim import PackedTokens

__all__ = ["StorageDtype", "TokenFolderReport", "TokenStore", "TokenStoreStats", "inspect_token_folder"]

logger = logging.getLogger(__name__)

StorageDtype = Literal["float16", "float32", "int8"]
"""How token vectors are stored: ``int8`` is symmetric per-token quantization with a float32 scale."""

SEGMENT_BYTES = 256 * 1024 * 1024
"""A segment file is closed for appends once the next page would take it past this size."""

_FORMAT = "1"
_SQL_BATCH = 500  # ids per ``IN (...)`` clause, below SQLite's variable limit
_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    seq INTEGER PRIMARY KEY, dim INTEGER NOT NULL, dtype TEXT NOT NULL, rows INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, row INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, dim INTEGER NOT NULL, dtype TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_place ON entries (seq, row);
"""


@dataclass(frozen=True, slots=True)
class TokenStoreStats:
    """What a token store holds.

    Attributes:
        pages: live pages (index entries).
        tokens: live token rows.
        live_bytes: bytes the live rows take in segment files (int8 scales included).
        file_bytes: bytes of all segment files, dead rows included.
    """

    pages: int
    tokens: int
    live_bytes: int
    file_bytes: int

    @property
    def dead_fraction(self) -> float:
        """Share of segment bytes no live page uses (what :meth:`TokenStore.compact` gives back)."""
        return 0.0 if self.file_bytes == 0 else max(0.0, 1.0 - self.live_bytes / self.file_bytes)


@dataclass(frozen=True, slots=True)
class TokenFolderReport:
    """What :func:`inspect_token_folder` found, read-only.

    Attributes:
        ids: page ids the index holds.
        owner: the Chroma collection id the tokens were written for (``None`` if not recorded).
        broken: page id -> its segment file, for pages whose segment is missing or cut short.
        missing_segments: segment files the index needs that are missing or shorter than indexed.
        orphan_segments: segment files the index does not know.
        error: why the index could not be read (then the rest is empty).
    """

    ids: frozenset[str] = frozenset()
    owner: str | None = None
    broken: dict[str, str] | None = None
    missing_segments: tuple[str, ...] = ()
    orphan_segments: tuple[str, ...] = ()
    error: str | None = None


def inspect_token_folder(folder: Path) -> TokenFolderReport:
    """Compare a token folder's index with its segment files without changing anything.

    A folder without an index reads as empty.
    """
    index = folder / "index.sqlite3"
    if not index.is_file():
        return TokenFolderReport(broken={})
    try:
        conn = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            settings = dict(conn.execute("SELECT key, value FROM settings").fetchall())
            segments = conn.execute("SELECT seq, dim, dtype, rows FROM segments").fetchall()
            entries = conn.execute("SELECT id, seq FROM entries").fetchall()
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as e:
        return TokenFolderReport(error=f"{index}: {e}")
    seg_dir = folder / "segments"
    bad: dict[object, str] = {}
    known: set[str] = set()
    for seq, dim, dtype, rows in segments:
        if not isinstance(seq, int) or dtype not in get_args(StorageDtype):
            bad[seq] = repr(seq)
            continue
        name = f"{seq:06d}"
        known.update((name + ".bin", name + ".scl"))
        need = [(name + ".bin", int(rows) * int(dim) * np.dtype(dtype).itemsize)]
        if dtype == "int8":
            need.append((name + ".scl", int(rows) * 4))
        for file, size in need:
            path = resolve_stored_path(seg_dir, file, what="token segment")
            try:
                ok = path is not None and path.stat().st_size >= size
            except OSError:
                ok = False
            if not ok:
                bad[seq] = file
    broken = {}
    for id_, seq in entries:
        if seq in bad or not isinstance(seq, int):
            broken[str(id_)] = bad.get(seq, repr(seq))
        elif f"{seq:06d}.bin" not in known:
            broken[str(id_)] = f"{seq:06d}.bin"
    orphans = sorted(
        p.name
        for p in (seg_dir.iterdir() if seg_dir.is_dir() else [])
        if p.suffix in (".bin", ".scl") and p.stem.isdigit() and p.name not in known
    )
    owner = settings.get("owner")
    return TokenFolderReport(
        ids=frozenset(str(r[0]) for r in entries),
        owner=str(owner) if owner else None,
        broken=broken,
        missing_segments=tuple(sorted(set(bad.values()) | set(broken.values()))),
        orphan_segments=tuple(orphans),
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    seq: int
    row: int
    n_tokens: int
    dim: int
    dtype: str


class TokenStore:
    """Token matrices keyed by page id, in append-only segments with a transactional index.

    The constructor opens nothing; the folder is created on the first write. Threads of one
    process share a store; writers in several processes are serialized by a lock file, and readers
    never block. Replacing an id (``put`` again) or deleting it leaves its old rows dead in their
    segment until :meth:`compact`.

    Example:
        >>> store = TokenStore(tmp / "tokens", dtype="int8")          # doctest: +SKIP
        >>> store.put(["p1"], [np.ones((3, 4), np.float32) / 2])       # doctest: +SKIP
        >>> store.get(["p1"])[0].shape, store.bytes_per_page()         # doctest: +SKIP
        ((3, 4), 24.0)                                  # 3 tokens x (4 int8 + 4-byte scale)

    Args:
        folder: the store's folder.
        dtype: storage of new rows: ``"float16"``, ``"float32"`` or ``"int8"`` (per-token scale).
            ``None`` uses what the folder records, ``"float16"`` for a new folder. A folder holding
            pages of another dtype refuses with :class:`StoreMismatchError`.
        segment_bytes: size at which a segment file stops taking appends.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        dtype: StorageDtype | None = None,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if dtype is not None:
            check_choice("dtype", dtype, get_args(StorageDtype))
        check_int("segment_bytes", segment_bytes, least=1)
        self._folder = Path(folder).expanduser()
        self._requested: StorageDtype | None = dtype
        self._segment_bytes = int(segment_bytes)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._dtype: StorageDtype = dtype or "float16"
        self._maps: dict[int, tuple[int, np.ndarray, np.ndarray | None]] = {}
        self._lock_file: FileLockHold | None = None
        self._lock_depth = 0

    # -- public API ----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self._folder

    @property
    def dtype(self) -> StorageDtype:
        """The storage dtype (what the folder records once opened)."""
        with self._lock:
            self._open()
            return self._dtype

    def put(self, ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        """Store one token matrix per id (replacing what an id held), all or nothing.

        Rows are appended and fsynced first, then the index entries are committed in one
        transaction: a crash in between leaves the store as it was.

        Args:
            ids: page ids, unique within the call.
            matrices: float arrays ``(n_tokens >= 1, dim)``, all finite, one ``dim`` per store.

        Raises:
            InvalidVectorError: a matrix with a bad shape, dtype, no token or a non-finite value.
            StoreMismatchError: ``dim`` differs from the stored pages', or the folder holds pages of
                another dtype.
            StoreError: the filesystem or the index failed.
        """
        if len(ids) != len(matrices):
            raise InvalidVectorError(f"got {len(ids)} ids but {len(matrices)} token matrices")
        if len(set(ids)) != len(ids):
            raise InvalidVectorError("ids must be unique within one put")
        if not ids:
            return
        checked = [check_token_matrix(m, what=f"tokens of {i!r}") for i, m in zip(ids, matrices, strict=True)]
        dims = {m.shape[1] for m in checked}
        if len(dims) > 1:
            raise InvalidVectorError(f"token matrices of one put must share their width, got {sorted(dims)}")
        dim = dims.pop()
        with self.locked():
            conn = self._open()
            self._check_write(conn, dim)
            encoded = [self._encode(m) for m in checked]
            self._append(conn, list(ids), encoded, dim)

    def get(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Return the token matrices of ``ids`` as float32 ``(n_tokens, dim)`` copies, in order.

        Raises:
            StoreError: an id has no tokens in the store.
        """
        with self._lock:
            conn = self._open()
            entries = self._lookup(conn, ids)
            out = []
            for i in ids:
                e = entries[i]
                tok, scl = self._view(conn, e.seq, e.row + e.n_tokens)
                out.append(
                    _decode(
                        tok[e.row : e.row + e.n_tokens],
                        None if scl is None else scl[e.row : e.row + e.n_tokens],
                    )
                )
            return out

    def packed(self, ids: Sequence[str] | None = None) -> tuple[list[str], PackedTokens]:
        """Return ``(ids, PackedTokens)`` of the given pages (or every page), ready for ``maxsim``.

        Pages stay in the storage dtype (float16 / float32 / int8 with scales). When the pages lie
        back to back in one segment (``ids=None`` on a compacted store with one segment, or
        candidates written together) the arrays are read-only views of the memory-mapped segment:
        nothing is copied. Otherwise their rows are gathered into one new array.

        Args:
            ids: pages in the order wanted (``None``: every page, in storage order).

        Raises:
            StoreError: an id has no tokens in the store.
        """
        with self._lock:
            conn = self._open()
            entries = self._ordered_entries(conn, ids)
            return [e.id for e in entries], self._pack(conn, entries)

    def iter_packed(self, ids: Sequence[str] | None = None) -> Iterator[tuple[list[str], PackedTokens]]:
        """Yield ``(ids, PackedTokens)`` one segment at a time: every page (or ``ids``), storage order.

        Bounded memory for scoring a whole store: a segment whose live pages are contiguous is
        yielded as a view of its memory map (no copy), others as one gathered copy of at most a
        segment's size.
        """
        with self._lock:
            conn = self._open()
            entries = self._ordered_entries(conn, ids)
            if ids is not None:
                entries.sort(key=lambda e: (e.seq, e.row))
        start = 0
        while start < len(entries):
            stop = start
            while stop < len(entries) and entries[stop].seq == entries[start].seq:
                stop += 1
            group = entries[start:stop]
            with self._lock:
                conn = self._open()
                packed = self._pack(conn, group)
            yield [e.id for e in group], packed
            start = stop

    def delete(self, ids: Sequence[str]) -> int:
        """Drop ``ids`` from the index (unknown ids are ignored); return how many were dropped.

        Their rows stay in the segment files until :meth:`compact`.
        """
        if not ids:
            return 0
        with self.locked():
            conn = self._open()
            removed = 0
            with self._transaction(conn, "deleting pages"):
                for chunk in _chunks(list(dict.fromkeys(ids))):
                    cur = conn.execute(f"DELETE FROM entries WHERE id IN ({_marks(chunk)})", chunk)
                    removed += cur.rowcount
            return removed

    def owner(self) -> str | None:
        """The id of the Chroma collection these tokens belong to (see :meth:`set_owner`)."""
        with self._lock:
            conn = self._open()
            row = conn.execute("SELECT value FROM settings WHERE key = 'owner'").fetchone()
            return str(row[0]) if row else None

    def set_owner(self, owner: str) -> None:
        """Record the Chroma collection these tokens belong to.

        A token folder whose owner differs from the collection beside it, while that collection is
        empty, was written for a database that is gone (replaced or zeroed): the store reports
        itself damaged instead of dropping the tokens as leftovers of an interrupted write.
        """
        if self.owner() == owner:
            return
        with self.locked():
            conn = self._open()
            with self._transaction(conn, "recording the owner"):
                conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('owner', ?)", (owner,))

    def ids(self) -> list[str]:
        """Return the stored page ids, sorted."""
        with self._lock:
            conn = self._open()
            return [r[0] for r in conn.execute("SELECT id FROM entries ORDER BY id")]

    def present(self, ids: Sequence[str]) -> set[str]:
        """Return which of ``ids`` have tokens in the store."""
        with self._lock:
            conn = self._open()
            found: set[str] = set()
            for chunk in _chunks(list(dict.fromkeys(ids))):
                found.update(
                    r[0] for r in conn.execute(f"SELECT id FROM entries WHERE id IN ({_marks(chunk)})", chunk)
                )
            return found

    def readable(self, ids: Sequence[str]) -> set[str]:
        """Return which of ``ids`` have tokens whose segment files exist and hold their rows."""
        with self._lock:
            conn = self._open()
            found: dict[str, int] = {}
            for chunk in _chunks(list(dict.fromkeys(ids))):
                for r in conn.execute(f"SELECT id, seq FROM entries WHERE id IN ({_marks(chunk)})", chunk):
                    found[str(r[0])] = r[1]
            intact: dict[object, bool] = {}
            for seq in set(found.values()):
                intact[seq] = self._segment_intact(conn, seq)
            return {i for i, seq in found.items() if intact[seq]}

    def _segment_intact(self, conn: sqlite3.Connection, seq: object) -> bool:
        row = conn.execute("SELECT dim, dtype, rows FROM segments WHERE seq = ?", (seq,)).fetchone()
        if row is None or not isinstance(seq, int) or str(row[1]) not in get_args(StorageDtype):
            return False
        dim, dtype, rows = int(row[0]), str(row[1]), int(row[2])
        bin_path, scl_path = self._paths(seq)
        try:
            if bin_path.stat().st_size < rows * dim * np.dtype(dtype).itemsize:
                return False
            return dtype != "int8" or scl_path.stat().st_size >= rows * 4
        except OSError:
            return False

    def sizes(self) -> dict[str, int]:
        """Return page id -> its number of stored token rows, for every page."""
        with self._lock:
            conn = self._open()
            return {str(r[0]): int(r[1]) for r in conn.execute("SELECT id, n_tokens FROM entries")}

    def data_version(self) -> int:
        """A number that changes when another connection commits to the index (SQLite's data_version)."""
        with self._lock:
            conn = self._open()
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def count(self) -> int:
        """Return the number of stored pages."""
        with self._lock:
            conn = self._open()
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def stats(self) -> TokenStoreStats:
        """Return page, token and byte counts (live and on disk)."""
        with self._lock:
            conn = self._open()
            pages, tokens, live = 0, 0, 0
            for n_pages, n_tokens, dim, dtype in conn.execute(
                "SELECT COUNT(*), SUM(n_tokens), dim, dtype FROM entries GROUP BY dim, dtype"
            ):
                pages += int(n_pages)
                tokens += int(n_tokens)
                live += int(n_tokens) * _row_bytes(int(dim), str(dtype))
            file_bytes = sum(p.stat().st_size for p in self._segment_dir.glob("*") if p.is_file())
            return TokenStoreStats(pages, tokens, live, file_bytes)

    def bytes_per_page(self) -> float:
        """Mean stored bytes per live page (rows plus int8 scales; dead rows not counted); 0.0 if empty."""
        s = self.stats()
        return s.live_bytes / s.pages if s.pages else 0.0

    def compact(self) -> int:
        """Rewrite the live rows into new segments, swap the index in one transaction, drop old files.

        Safe against crashes at any point (see the module docstring). Readers holding arrays from
        before keep valid data on POSIX systems (the old files are unlinked, not overwritten).

        Returns:
            Bytes of segment files given back.
        """
        with self.locked():
            conn = self._open()
            before = self.stats().file_bytes
            entries = self._ordered_entries(conn, None)
            old = [self._int(r[0], "segment") for r in conn.execute("SELECT seq FROM segments")]
            moves: list[tuple[int, int, str]] = []
            new_segments: dict[int, tuple[int, str, int]] = {}
            seq, rows, seg_dim, seg_dtype = -1, 0, -1, ""
            next_seq = self._next_seq(conn)
            created: list[int] = []
            try:
                for e in entries:
                    n_bytes = e.n_tokens * _row_bytes(e.dim, e.dtype)
                    if (
                        seq < 0
                        or (e.dim, e.dtype) != (seg_dim, seg_dtype)
                        or (rows > 0 and (rows * _row_bytes(e.dim, e.dtype) + n_bytes) > self._segment_bytes)
                    ):
                        seq, rows, seg_dim, seg_dtype = next_seq, 0, e.dim, e.dtype
                        next_seq += 1
                        created.append(seq)
                        self._create(seq)
                    tok, scl = self._view(conn, e.seq, e.row + e.n_tokens)
                    self._write_rows(
                        seq,
                        rows,
                        np.ascontiguousarray(tok[e.row : e.row + e.n_tokens]),
                        None if scl is None else np.ascontiguousarray(scl[e.row : e.row + e.n_tokens]),
                    )
                    moves.append((seq, rows, e.id))
                    rows += e.n_tokens
                    new_segments[seq] = (e.dim, e.dtype, rows)
                for s in created:
                    self._fsync_segment(s)
                fsync_dir(self._segment_dir)
            except OSError as e:
                for s in created:
                    self._unlink_segment(s)
                raise StoreError(f"token store {self._folder}: compaction failed: {e}") from e
            with self._transaction(conn, "swapping the index after compaction"):
                conn.executemany("UPDATE entries SET seq = ?, row = ? WHERE id = ?", moves)
                conn.execute("DELETE FROM segments")
                conn.executemany(
                    "INSERT INTO segments (seq, dim, dtype, rows) VALUES (?, ?, ?, ?)",
                    [(s, d, t, r) for s, (d, t, r) in new_segments.items()],
                )
                conn.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('next_seq', ?)", (str(next_seq),)
                )
            for s in old:
                self._maps.pop(s, None)
                self._unlink_segment(s)
            after = self.stats().file_bytes
        logger.info("compacted token store %s: %d -> %d bytes", self._folder, before, after)
        return max(0, before - after)

    lock_timeout: float = 10.0
    """Seconds a write waits for another process's hold of the token store's lock."""

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's write lock (threads and processes); re-entrant within a thread.

        Raises:
            StoreError: another process holds it for longer than ``lock_timeout`` (names its pid),
                or the lock file cannot be used.

        :class:`~pagesight.retrieval.store.MultiVectorStore` holds it across a whole
        ``add_source`` so that another process's reconciliation never sees a half-written source.
        """
        with self._lock:
            if self._lock_depth == 0:
                self._acquire_file_lock()
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    self._release_file_lock()

    def close(self) -> None:
        """Close the index and drop the memory maps; the store reopens if used again."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._maps.clear()
            if conn is not None:
                conn.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenStore({str(self._folder)!r}, dtype={self._dtype!r})"

    # -- opening -------------------------------------------------------------------------------

    @property
    def _segment_dir(self) -> Path:
        return self._folder / "segments"

    def _open(self) -> sqlite3.Connection:
        """Return the index connection, creating the folder and schema on first use (lock held)."""
        if self._conn is not None:
            return self._conn
        try:
            self._segment_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._folder / "index.sqlite3", timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"token store {self._folder}: cannot open its index: {e}") from e
        self._conn = conn
        settings = dict(conn.execute("SELECT key, value FROM settings").fetchall())
        if settings.get("format", _FORMAT) != _FORMAT:
            conn.close()
            self._conn = None
            raise StoreError(
                f"token store {self._folder} has format {settings['format']}; this pagesight reads {_FORMAT}"
            )
        recorded = cast("StorageDtype | None", settings.get("dtype"))
        if recorded is None:
            with self._transaction(conn, "initializing"):
                conn.execute("INSERT OR IGNORE INTO settings VALUES ('format', ?)", (_FORMAT,))
                conn.execute("INSERT OR IGNORE INTO settings VALUES ('dtype', ?)", (self._dtype,))
        elif self._requested is None:
            self._dtype = recorded
        elif recorded != self._requested:
            if conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]:
                conn.close()
                self._conn = None
                raise StoreMismatchError(
                    f"token store {self._folder} holds {recorded} tokens; refusing to use it as "
                    f"{self._requested}. Open it with dtype={recorded!r} or use a new folder."
                )
            with self._transaction(conn, "changing the dtype of an empty store"):
                conn.execute("UPDATE settings SET value = ? WHERE key = 'dtype'", (self._requested,))
        self._remove_orphans(conn)
        return conn

    def _remove_orphans(self, conn: sqlite3.Connection) -> None:
        """Delete segment files the index does not know (a crashed compaction), if no writer is busy."""
        if not self._try_file_lock():
            return
        try:
            known = {r[0] for r in conn.execute("SELECT seq FROM segments")}
            for path in self._segment_dir.glob("*"):
                stem = path.stem
                if path.suffix in (".bin", ".scl") and stem.isdigit() and int(stem) not in known:
                    logger.warning(
                        "token store %s: removing %s, left by an interrupted write", self._folder, path.name
                    )
                    path.unlink(missing_ok=True)
        finally:
            self._release_file_lock()

    # -- locking -------------------------------------------------------------------------------

    def _file_lock(self) -> FileLockHold:
        if self._lock_file is None:
            self._lock_file = FileLockHold(self._folder / "LOCK", f"token store {self._folder}")
        return self._lock_file

    def _acquire_file_lock(self) -> None:
        self._file_lock().take(self.lock_timeout, "wait for it to finish (one writing process per store)")

    def _try_file_lock(self) -> bool:
        if self._lock_depth > 0:
            return True
        return self._file_lock().try_take()

    def _release_file_lock(self) -> None:
        if self._lock_depth > 0 or self._lock_file is None:
            return
        self._file_lock().release()

    def _transaction(self, conn: sqlite3.Connection, action: str) -> contextlib.AbstractContextManager[None]:
        return sqlite_transaction(conn, f"token store {self._folder}", action)

    # -- writing -------------------------------------------------------------------------------

    def _check_write(self, conn: sqlite3.Connection, dim: int) -> None:
        row = conn.execute(
            "SELECT dim, dtype FROM entries WHERE dim != ? OR dtype != ? LIMIT 1", (dim, self._dtype)
        ).fetchone()
        if row is not None:
            raise StoreMismatchError(
                f"token store {self._folder} holds {row[1]} tokens of width {row[0]}; refusing to add "
                f"{self._dtype} tokens of width {dim}. Delete its pages first or use a new folder."
            )

    def _encode(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._dtype == "int8":
            from pagesight.retrieval.maxsim import quantize_int8

            values, scales = quantize_int8(m)
            return np.ascontiguousarray(values, np.int8), np.ascontiguousarray(scales, np.float32)
        return np.ascontiguousarray(m, np.dtype(self._dtype)), None

    def _append(
        self,
        conn: sqlite3.Connection,
        ids: list[str],
        encoded: list[tuple[np.ndarray, np.ndarray | None]],
        dim: int,
    ) -> None:
        row_bytes = _row_bytes(dim, self._dtype)
        last = conn.execute("SELECT seq, dim, dtype, rows FROM segments ORDER BY seq DESC LIMIT 1").fetchone()
        next_seq = self._next_seq(conn)
        if last is not None and (last[1], str(last[2])) == (dim, self._dtype):
            seq, rows = self._int(last[0], "segment"), self._int(last[3], "row")
        else:
            seq, rows = next_seq, 0
            next_seq += 1
        placed: list[tuple[str, int, int, int]] = []  # id, seq, row, n
        pending: dict[int, list[tuple[np.ndarray, np.ndarray | None]]] = {}
        start_rows: dict[int, int] = {}
        for id_, (values, scales) in zip(ids, encoded, strict=True):
            n = len(values)
            if rows > 0 and (rows + n) * row_bytes > self._segment_bytes:
                seq, rows = next_seq, 0
                next_seq += 1
            start_rows.setdefault(seq, rows)
            pending.setdefault(seq, []).append((values, scales))
            placed.append((id_, seq, rows, n))
            rows += n
        seg_rows: dict[int, int] = {}
        try:
            for s, parts in pending.items():
                self._create(s)
                values = np.concatenate([p[0] for p in parts])
                scales = (
                    None if parts[0][1] is None else np.concatenate([cast(np.ndarray, p[1]) for p in parts])
                )
                self._write_rows(s, start_rows[s], values, scales)
                self._fsync_segment(s)
                seg_rows[s] = start_rows[s] + len(values)
            fsync_dir(self._segment_dir)
        except OSError as e:
            raise StoreError(f"token store {self._folder}: writing token rows failed: {e}") from e
        with self._transaction(conn, "committing token index entries"):
            conn.executemany(
                "INSERT OR REPLACE INTO entries (id, seq, row, n_tokens, dim, dtype)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(i, s, r, n, dim, self._dtype) for i, s, r, n in placed],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO segments (seq, dim, dtype, rows) VALUES (?, ?, ?, ?)",
                [(s, dim, self._dtype, r) for s, r in seg_rows.items()],
            )
            conn.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('next_seq', ?)", (str(next_seq),)
            )

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM settings WHERE key = 'next_seq'").fetchone()
        top = conn.execute("SELECT MAX(seq) FROM segments").fetchone()[0]
        recorded = str(row[0]) if row else "1"
        if not recorded.isdigit():
            raise StoreError(f"token store {self._folder}: its index records next_seq {recorded!r}")
        return max(int(recorded), (self._int(top, "segment") + 1) if top is not None else 1)

    def _paths(self, seq: int) -> tuple[Path, Path]:
        """The segment's files: names built from its integer number, checked to stay in the folder."""
        name = f"{self._int(seq, 'segment'):06d}"
        paths = tuple(
            resolve_stored_path(self._segment_dir, name + suffix, what="token segment")
            for suffix in (".bin", ".scl")
        )
        if paths[0] is None or paths[1] is None:
            raise StoreError(
                f"token store {self._folder}: segment {seq} would lie outside {self._segment_dir}"
            )
        return paths[0], paths[1]

    def _create(self, seq: int) -> None:
        """Make sure the segment's files exist (``_write_rows`` opens them for update)."""
        for path in self._paths(seq):
            if path.suffix == ".bin" or self._dtype == "int8":
                with open(path, "ab"):
                    pass

    def _write_rows(self, seq: int, row: int, values: np.ndarray, scales: np.ndarray | None) -> None:
        """Write rows at ``row``, first cutting the files there (bytes of an interrupted write go)."""
        bin_path, scl_path = self._paths(seq)
        row_bytes = values.shape[1] * values.dtype.itemsize
        with open(bin_path, "r+b") as f:
            f.truncate(row * row_bytes)
            f.seek(row * row_bytes)
            f.write(np.ascontiguousarray(values).data)
        if scales is not None:
            with open(scl_path, "r+b") as f:
                f.truncate(row * 4)
                f.seek(row * 4)
                f.write(np.ascontiguousarray(scales, np.float32).data)

    def _fsync_segment(self, seq: int) -> None:
        for path in self._paths(seq):
            if path.exists():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _unlink_segment(self, seq: int) -> None:
        for path in self._paths(seq):
            try:
                path.unlink(missing_ok=True)
            except OSError as e:  # Windows keeps mapped files; a later open removes them
                logger.debug("could not remove %s: %s", path, e)

    # -- reading -------------------------------------------------------------------------------

    def _lookup(self, conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, _Entry]:
        found: dict[str, _Entry] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            for r in conn.execute(
                f"SELECT id, seq, row, n_tokens, dim, dtype FROM entries WHERE id IN ({_marks(chunk)})", chunk
            ):
                found[r[0]] = self._entry(r)
        missing = [i for i in ids if i not in found]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise StoreError(f"token store {self._folder} holds no tokens for {missing[:3]}{more}")
        return found

    def _ordered_entries(self, conn: sqlite3.Connection, ids: Sequence[str] | None) -> list[_Entry]:
        if ids is not None:
            found = self._lookup(conn, ids)
            return [found[i] for i in ids]
        return [
            self._entry(r)
            for r in conn.execute("SELECT id, seq, row, n_tokens, dim, dtype FROM entries ORDER BY seq, row")
        ]

    def _entry(self, r: Sequence[Any]) -> _Entry:
        """An index row, its numbers checked (a hostile or damaged index gives StoreError)."""
        dtype = str(r[5])
        if dtype not in get_args(StorageDtype):
            raise StoreError(f"token store {self._folder}: page {r[0]!r} has an unknown dtype {dtype!r}")
        return _Entry(
            str(r[0]),
            self._int(r[1], "segment"),
            self._int(r[2], "row"),
            self._int(r[3], "token count"),
            self._int(r[4], "width"),
            dtype,
        )

    def _int(self, value: object, what: str) -> int:
        """A number read from the index; anything else (text such as ``'../x'``) is refused."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise StoreError(
                f"token store {self._folder}: its index holds {value!r} as a {what} number; the index is "
                "damaged or was not written by pagesight (run `pagesight check` on the store)"
            )
        return value

    def _view(
        self, conn: sqlite3.Connection, seq: int, rows_needed: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Read-only memory maps of a segment's committed rows (remapped when it has grown)."""
        cached = self._maps.get(seq)
        if cached is not None and cached[0] >= rows_needed:
            return cached[1], cached[2]
        r = conn.execute("SELECT dim, dtype, rows FROM segments WHERE seq = ?", (seq,)).fetchone()
        if r is None:
            raise StoreError(f"token store {self._folder}: segment {seq} is missing from the index")
        dim, dtype, rows = self._int(r[0], "width"), str(r[1]), self._int(r[2], "row")
        if dtype not in get_args(StorageDtype):
            raise StoreError(f"token store {self._folder}: segment {seq} has an unknown dtype {dtype!r}")
        bin_path, scl_path = self._paths(seq)
        try:
            tok = np.memmap(bin_path, dtype=np.dtype(dtype), mode="c", shape=(rows, dim))
            scl = np.memmap(scl_path, dtype=np.float32, mode="c", shape=(rows,)) if dtype == "int8" else None
        except (OSError, ValueError) as e:
            raise StoreError(f"token store {self._folder}: cannot read segment {bin_path.name}: {e}") from e
        live = {x[0] for x in conn.execute("SELECT seq FROM segments")}
        for stale in [s for s in self._maps if s not in live]:  # compacted away by another process:
            del self._maps[stale]  # unmapping lets the filesystem free the unlinked file
        self._maps[seq] = (rows, tok, scl)
        return tok, scl

    def _pack(self, conn: sqlite3.Connection, entries: list[_Entry]) -> PackedTokens:
        from pagesight.retrieval.maxsim import PackedTokens

        lengths = np.array([e.n_tokens for e in entries], dtype=np.int64)
        offsets = np.zeros(len(entries) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        dim = entries[0].dim if entries else 0
        dtype = np.dtype(entries[0].dtype if entries else self._dtype)
        if not entries:
            return PackedTokens(
                tokens=np.zeros((0, dim), dtype),
                offsets=offsets,
                scales=np.zeros(0, np.float32) if dtype == np.int8 else None,
            )
        first = entries[0]
        contiguous = all(
            e.seq == first.seq and e.row == first.row + int(offsets[k]) for k, e in enumerate(entries)
        )
        if contiguous:
            tok, scl = self._view(conn, first.seq, first.row + int(offsets[-1]))
            stop = first.row + int(offsets[-1])
            return PackedTokens(
                tokens=tok[first.row : stop],
                offsets=offsets,
                scales=None if scl is None else scl[first.row : stop],
            )
        tokens = np.empty((int(offsets[-1]), dim), dtype)
        scales = np.empty(int(offsets[-1]), np.float32) if dtype == np.int8 else None
        for k, e in enumerate(entries):
            tok, scl = self._view(conn, e.seq, e.row + e.n_tokens)
            a, b = int(offsets[k]), int(offsets[k + 1])
            tokens[a:b] = tok[e.row : e.row + e.n_tokens]
            if scales is not None and scl is not None:
                scales[a:b] = scl[e.row : e.row + e.n_tokens]
        return PackedTokens(tokens=tokens, offsets=offsets, scales=scales)


# -- helpers ---------------------------------------------------------------------------------------


def check_token_matrix(matrix: np.ndarray, *, what: str) -> np.ndarray:
    """Return ``matrix`` as float32 after checking it is 2-D, float, non-empty and finite."""
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InvalidVectorError(f"{what}: expected a (n_tokens >= 1, dim) matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidVectorError(f"{what}: token vectors must be floats, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InvalidVectorError(f"{what}: token matrix holds NaN or infinity; nothing was written")
    return arr.astype(np.float32, copy=False)


def _decode(values: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
    if scales is None:
        return np.array(values, dtype=np.float32)
    return values.astype(np.float32) * np.asarray(scales, np.float32)[:, None]


def _row_bytes(dim: int, dtype: str) -> int:
    size = dim * np.dtype(dtype).itemsize
    return size + 4 if dtype == "int8" else size


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _SQL_BATCH):
        yield items[start : start + _SQL_BATCH]


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))


@contextlib.contextmanager
def sqlite_transaction(conn: sqlite3.Connection, what: str, action: str) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error); sqlite errors become :class:`StoreError`
    saying ``"{what}: {action} failed"``."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise StoreError(f"{what}: {action} failed: {e}") from e
    try:
        yield
    except BaseException as e:
        conn.execute("ROLLBACK")
        if isinstance(e, sqlite3.Error):
            raise StoreError(f"{what}: {action} failed: {e}") from e
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise StoreError(f"{what}: {action} failed: {e}") from e

"""Token-level candidates for late interaction: centroids of token vectors and inverted lists to pages.

PLAID-style (Santhanam et al. 2022, ColBERTv2's engine), without residual compression:

1. **Centroids**: spherical k-means over a sample of the stored token vectors (faiss when installed,
   else numpy). Every page is coded as the set of centroids nearest to its tokens.
2. **Candidates**: each query token probes its ``nprobe`` most similar centroids; a page found in
   those centroids' lists gets, per query token, the best similarity of the probed centroids it
   holds (a floor for the query tokens it misses). The sum over query tokens (centroid interaction)
   ranks the pages; the top ``candidates`` go on.
3. **Exact MaxSim** on the survivors' real tokens (:func:`search`).

Use::

    from pagesight.retrieval.store.centroids import CentroidIndex, search

    index = CentroidIndex("index/tokens/centroids")
    with tokens.locked():
        index.sync(tokens)                 # trains once the store is big enough, codes new pages
    hits = search(query, tokens, index, k=10)   # [(page id, MaxSim score)], best first

Layout of the folder::

    index.sqlite3          settings (generation, its centroid count, tokens it was trained on);
                           codes: (page id, generation) -> the page's distinct centroid ids (int32)
    centroids-000001.npy   float32 (n_centroids, dim), memory-mapped at query time

The index is derived data: :meth:`CentroidIndex.sync` compares it with the token store and codes the
pages it lacks, drops the pages the token store no longer has, and retrains (a new generation, coded
page by page, switched in one transaction) when the store has grown ``regrow`` times past the
tokens the centroids were trained on. A crash at any point leaves a state the next ``sync``
completes; pages the index has not coded yet (another process's write in progress, a crash) are
scored exactly at every search, so they are never missed.
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
from typing import TYPE_CHECKING, Literal

import numpy as np

from pagesight._checks import check_int
from pagesight.errors import StoreError
from pagesight.retrieval.store._journal import fsync_dir
from pagesight.retrieval.store.tokens import sqlite_transaction

if TYPE_CHECKING:
    from pagesight.retrieval.store.tokens import TokenStore

__all__ = ["CentroidIndex", "CentroidIndexStats", "auto_centroids", "search", "train_centroids"]

logger = logging.getLogger(__name__)

DEFAULT_NPROBE = 4
"""Centroids each query token probes (tuned on 20,000 real passages, see ``bench/late_candidates.py``)."""

DEFAULT_CANDIDATES = 256
"""Pages the centroid interaction keeps for exact MaxSim."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS codes (
    id TEXT NOT NULL, gen INTEGER NOT NULL, codes BLOB NOT NULL, PRIMARY KEY (id, gen)
);
"""
_SHORTLIST = 4  # pages kept by the probe-only score, per candidate, for the centroid interaction
_MIN_SHORTLIST = 1024
_CODE_BATCH_TOKENS = 65536  # token rows assigned per matrix product
_SQL_BATCH = 500


@dataclass(frozen=True, slots=True)
class CentroidIndexStats:
    """What a centroid index holds.

    Attributes:
        generation: the active generation (0: no centroids yet, the store is too small).
        n_centroids: centroids of the active generation.
        trained_tokens: token count of the store when those centroids were trained.
        coded_pages: pages coded with the active generation.
        code_entries: distinct (page, centroid) pairs: the inverted lists' length.
        file_bytes: bytes of the folder (centroids and the SQLite index).
    """

    generation: int
    n_centroids: int
    trained_tokens: int
    coded_pages: int
    code_entries: int
    file_bytes: int


def auto_centroids(n_tokens: int, most: int = 4096) -> int:
    """Centroid count for ``n_tokens`` token vectors: PLAID's ``16 sqrt(n_tokens)`` as a power of two,
    between 64 and ``most``.

    The cap keeps building affordable on a CPU (coding every token costs
    ``n_tokens * n_centroids * dim``); beyond it the lists grow and the exact stage recovers what
    coarser centroids lose.
    """
    k = 2 ** int(np.floor(np.log2(max(1.0, 16.0 * np.sqrt(max(1, n_tokens))))))
    return int(min(most, max(64, k)))


def train_centroids(
    sample: np.ndarray,
    n_centroids: int,
    *,
    iterations: int = 10,
    seed: int = 0,
    method: Literal["auto", "faiss", "numpy"] = "auto",
) -> np.ndarray:
    """Spherical k-means: ``n_centroids`` unit rows (float32) fitted to ``sample`` ``(n, dim)``.

    ``method="auto"`` uses faiss (``pip install faiss-cpu``; multi-threaded) when it imports, else
    numpy (same algorithm: cosine assignment, renormalized means, empty clusters reseeded).
    """
    x = np.ascontiguousarray(sample, np.float32)
    k = int(min(n_centroids, len(x)))
    if k < 1:
        raise ValueError("train_centroids needs at least one sample row")
    use_faiss = method == "faiss"
    if method == "auto":  # faiss wants >= 39 points per centroid; small samples go to numpy
        try:
            import faiss  # noqa: F401

            use_faiss = len(x) >= 39 * k
        except ImportError:
            use_faiss = False
    if use_faiss:
        try:
            import faiss
        except ImportError as e:
            raise ImportError("train_centroids(method='faiss') needs faiss: pip install faiss-cpu") from e
        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=iterations,
            spherical=True,
            seed=seed,
            verbose=False,
            max_points_per_centroid=max(256, len(x) // k + 1),
        )
        km.train(x)
        cents = np.asarray(km.centroids, np.float32)
    else:
        rng = np.random.default_rng(seed)
        cents = x[rng.choice(len(x), size=k, replace=False)].copy()
        for _ in range(iterations):
            assign = _assign(x, cents)
            sums = np.zeros_like(cents)
            np.add.at(sums, assign, x)
            counts = np.bincount(assign, minlength=k)
            empty = counts == 0
            if empty.any():
                sums[empty] = x[rng.choice(len(x), size=int(empty.sum()), replace=False)]
            cents = sums
            cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    norms = np.linalg.norm(cents, axis=1, keepdims=True)
    return np.ascontiguousarray(cents / np.maximum(norms, 1e-12), np.float32)


def _assign(x: np.ndarray, cents: np.ndarray) -> np.ndarray:
    """Index of the most similar centroid for each row of ``x`` (float32 products in blocks)."""
    out = np.empty(len(x), np.int32)
    for a in range(0, len(x), _CODE_BATCH_TOKENS):
        block = np.asarray(x[a : a + _CODE_BATCH_TOKENS], np.float32)
        out[a : a + len(block)] = np.argmax(block @ cents.T, axis=1)
    return out


@dataclass(slots=True)
class _Loaded:
    """The inverted lists in memory, for one state of the index."""

    key: tuple[int, ...]
    gen: int
    centroids: np.ndarray  # (K, dim) float32, memory-mapped
    ids: list[str]  # index page number -> page id
    position: dict[str, int]
    list_offsets: np.ndarray  # (K + 1,) int64
    list_pages: np.ndarray  # int32 page numbers, grouped by centroid
    page_offsets: np.ndarray  # (n_pages + 1,) int64 into page_codes
    page_codes: np.ndarray  # int32 centroid ids of each page, page after page
    uncoded: list[str]  # pages with tokens but no codes yet: scored exactly


class CentroidIndex:
    """Centroids of a token store's vectors and, per page, the centroids its tokens fall in.

    The constructor opens nothing. Writes (:meth:`sync`) must hold the token store's lock; reads
    never block and notice other processes' writes.

    Args:
        folder: the index's folder (``<token_dir>/centroids`` for a
            :class:`~pagesight.retrieval.store.MultiVectorStore`).
        min_pages: no centroids below this many pages (search is then exhaustive, and exact).
        regrow: retrain when the store holds this many times the tokens the centroids were
            trained on.
        n_centroids: centroids per generation; ``None``: :func:`auto_centroids` of the token count.
        sample_per_centroid: training tokens per centroid (at most; all tokens when fewer).
        seed: sampling and k-means seed.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        min_pages: int = 1000,
        regrow: float = 4.0,
        n_centroids: int | None = None,
        sample_per_centroid: int = 48,
        seed: int = 0,
    ) -> None:
        check_int("min_pages", min_pages, least=1)
        check_int("n_centroids", n_centroids, least=1, optional=True)
        check_int("sample_per_centroid", sample_per_centroid, least=1)
        if not regrow > 1.0:
            raise ValueError(f"`regrow` must be > 1, got {regrow}")
        self._folder = Path(folder).expanduser()
        self.min_pages = int(min_pages)
        self.regrow = float(regrow)
        self.n_centroids = n_centroids
        self.sample_per_centroid = int(sample_per_centroid)
        self.seed = int(seed)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._loaded: _Loaded | None = None
        self._writes = 0  # this process's syncs: part of the cache key

    @property
    def folder(self) -> Path:
        return self._folder

    # -- writing -------------------------------------------------------------------------------

    def sync(self, tokens: TokenStore, changed: Sequence[str] = ()) -> int:
        """Bring the index in line with ``tokens`` (whose lock the caller holds); return pages coded.

        Drops pages the token store no longer holds, trains centroids when the store first reaches
        ``min_pages`` pages or has grown ``regrow`` times, and codes every page without codes of the
        active generation. ``changed``: ids whose tokens were just (re)written; their old codes go.
        """
        with self._lock:
            conn = self._open()
            sizes = tokens.sizes()
            self._writes += 1
            self._remove_gone(conn, sizes, changed)
            settings = self._settings(conn)
            gen, nxt = int(settings.get("gen", "0")), int(settings.get("next_gen", "0"))
            total = sum(sizes.values())
            if nxt == 0 and len(sizes) >= self.min_pages:
                trained = int(settings.get("trained_tokens", "0"))
                if gen == 0 or total > self.regrow * trained:
                    nxt = self._train(conn, tokens, sizes, total, gen)
            coded = 0
            for target in [g for g in (gen, nxt) if g > 0]:
                coded += self._code_missing(conn, tokens, sizes, target)
            if nxt > 0:
                self._switch(conn, gen, nxt)
            return coded

    def _remove_gone(self, conn: sqlite3.Connection, sizes: dict[str, int], changed: Sequence[str]) -> None:
        have = {str(r[0]) for r in conn.execute("SELECT DISTINCT id FROM codes")}
        gone = sorted((have - sizes.keys()) | (have & set(changed)))
        if gone:
            with self._transaction(conn, "dropping codes of deleted pages"):
                for chunk in _chunks(gone):
                    conn.execute(f"DELETE FROM codes WHERE id IN ({_marks(chunk)})", chunk)

    def _train(
        self, conn: sqlite3.Connection, tokens: TokenStore, sizes: dict[str, int], total: int, gen: int
    ) -> int:
        """Fit a new generation's centroids, write them durably, record it as ``next_gen``."""
        k = self.n_centroids or auto_centroids(total)
        sample = self._sample(tokens, sizes, total, k * self.sample_per_centroid)
        cents = train_centroids(sample, k, seed=self.seed)
        nxt = gen + 1
        path = self._centroid_path(nxt)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, cents)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fsync_dir(self._folder)
        except OSError as e:
            raise StoreError(f"centroid index {self._folder}: writing centroids failed: {e}") from e
        with self._transaction(conn, "recording new centroids"):
            conn.execute("DELETE FROM codes WHERE gen = ?", (nxt,))
            self._set(conn, next_gen=nxt, next_trained_tokens=total, next_centroids=len(cents))
        logger.info(
            "centroid index %s: trained %d centroids on %d of %d tokens",
            self._folder,
            len(cents),
            len(sample),
            total,
        )
        return nxt

    def _sample(self, tokens: TokenStore, sizes: dict[str, int], total: int, want: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        fraction = min(1.0, want / max(1, total))
        parts = []
        for _, packed in tokens.iter_packed():
            n = len(packed.tokens)
            pick = np.sort(rng.choice(n, size=max(1, int(round(n * fraction))), replace=False))
            parts.append(_rows(packed.tokens, packed.scales, pick))
        return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)

    def _code_missing(
        self, conn: sqlite3.Connection, tokens: TokenStore, sizes: dict[str, int], gen: int
    ) -> int:
        cents = self._centroids(gen)
        have = {str(r[0]) for r in conn.execute("SELECT id FROM codes WHERE gen = ?", (gen,))}
        todo = [i for i in sizes if i not in have]
        if not todo:
            return 0
        done = 0
        for ids, packed in tokens.iter_packed(todo):
            start = 0
            while start < len(ids):  # about _CODE_BATCH_TOKENS token rows per step and transaction
                stop, rows = start, 0
                while stop < len(ids) and (rows == 0 or rows < _CODE_BATCH_TOKENS):
                    rows += int(packed.offsets[stop + 1] - packed.offsets[stop])
                    stop += 1
                a, b = int(packed.offsets[start]), int(packed.offsets[stop])
                assign = _assign(_rows(packed.tokens, packed.scales, slice(a, b)), cents)
                batch = []
                for j in range(start, stop):
                    lo, hi = int(packed.offsets[j]) - a, int(packed.offsets[j + 1]) - a
                    batch.append((ids[j], gen, np.unique(assign[lo:hi]).astype("<i4").tobytes()))
                with self._transaction(conn, "writing page codes"):
                    conn.executemany("INSERT OR REPLACE INTO codes (id, gen, codes) VALUES (?, ?, ?)", batch)
                done += len(batch)
                start = stop
        return done

    def _switch(self, conn: sqlite3.Connection, old: int, new: int) -> None:
        """Make generation ``new`` the active one (one transaction), then drop ``old``'s files."""
        settings = self._settings(conn)
        with self._transaction(conn, "switching to the new centroids"):
            self._set(
                conn,
                gen=new,
                trained_tokens=int(settings["next_trained_tokens"]),
                n_centroids=int(settings["next_centroids"]),
                next_gen=0,
            )
            conn.execute("DELETE FROM codes WHERE gen != ?", (new,))
        self._remove_stale_files(keep={new})

    def reset(self) -> None:
        """Forget everything (the next :meth:`sync` retrains once the store is big enough)."""
        with self._lock:
            conn = self._open()
            with self._transaction(conn, "resetting"):
                conn.execute("DELETE FROM codes")
                conn.execute("DELETE FROM settings")
            self._remove_stale_files(keep=set())
            self._loaded = None

    # -- reading -------------------------------------------------------------------------------

    def built(self, tokens: TokenStore) -> bool:
        """Whether the index has centroids (else search is exhaustive)."""
        return self._state(tokens) is not None

    def stats(self) -> CentroidIndexStats:
        with self._lock:
            conn = self._open()
            s = self._settings(conn)
            gen = int(s.get("gen", "0"))
            pages, entries = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(codes)), 0) / 4 FROM codes WHERE gen = ?", (gen,)
            ).fetchone()
            size = sum(p.stat().st_size for p in self._folder.glob("*") if p.is_file())
            return CentroidIndexStats(
                gen,
                int(s.get("n_centroids", "0")),
                int(s.get("trained_tokens", "0")),
                int(pages),
                int(entries),
                size,
            )

    def candidates(
        self,
        query: np.ndarray,
        tokens: TokenStore,
        *,
        candidates: int = DEFAULT_CANDIDATES,
        nprobe: int = DEFAULT_NPROBE,
        wanted: set[str] | None = None,
    ) -> list[str] | None:
        """Page ids to score exactly for ``query`` ``(q, dim)``; ``None`` if the index has no centroids.

        The ``candidates`` best pages by centroid interaction, then every page not coded yet.
        ``wanted``: only these pages.
        """
        check_int("candidates", candidates, least=1)
        check_int("nprobe", nprobe, least=1)
        state = self._state(tokens)
        if state is None:
            return None
        n = len(state.ids)
        q = np.asarray(query, np.float32)
        sims = q @ state.centroids.T  # (q, K)
        probe = min(nprobe, sims.shape[1])
        top = np.argpartition(-sims, probe - 1, axis=1)[:, :probe]
        total = np.zeros(n, np.float32)
        hit = np.zeros(n, bool)
        lo, hi = state.list_offsets[:-1], state.list_offsets[1:]
        for i in range(len(q)):
            cols = top[i][np.argsort(sims[i, top[i]])]  # ascending: the best centroid is written last
            floor = 0.0
            best = np.full(n, floor, np.float32)
            for c in cols:
                pages = state.list_pages[lo[c] : hi[c]]
                best[pages] = sims[i, c]
                hit[pages] = True
            total += best
        if wanted is not None:
            keep = np.zeros(n, bool)
            keep[[state.position[i] for i in wanted if i in state.position]] = True
            hit &= keep
        found = np.flatnonzero(hit)
        shortlist = max(_SHORTLIST * candidates, _MIN_SHORTLIST)
        if len(found) > shortlist:  # probed centroids only: a cheap first cut
            found = found[np.argpartition(-total[found], shortlist - 1)[:shortlist]]
        if len(found) > candidates:  # centroid interaction with all of each page's centroids
            scores = _centroid_interaction(sims, state.page_offsets, state.page_codes, found)
            found = found[np.argpartition(-scores, candidates - 1)[:candidates]]
        out = [state.ids[int(j)] for j in found]
        extra = state.uncoded if wanted is None else [i for i in state.uncoded if i in wanted]
        return out + extra

    def _state(self, tokens: TokenStore) -> _Loaded | None:
        with self._lock:
            conn = self._open()
            key = (self._writes, _data_version(conn), tokens.data_version())
            if self._loaded is not None and self._loaded.key == key:
                return self._loaded
            with self._read(conn):
                s = self._settings(conn)
                gen = int(s.get("gen", "0"))
                if gen == 0:
                    self._loaded = None
                    return None
                rows = conn.execute("SELECT id, codes FROM codes WHERE gen = ?", (gen,)).fetchall()
            cents = self._centroids(gen)
            ids = [str(r[0]) for r in rows]
            codes = [np.frombuffer(r[1], "<i4") for r in rows]
            lengths = np.array([len(c) for c in codes], np.int64)
            flat = np.concatenate(codes) if codes else np.zeros(0, np.int32)
            owner = np.repeat(np.arange(len(ids), dtype=np.int32), lengths)
            order = np.argsort(flat, kind="stable")
            counts = np.bincount(flat, minlength=len(cents)) if len(flat) else np.zeros(len(cents), np.int64)
            offsets = np.zeros(len(cents) + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            present = set(ids)
            uncoded = [i for i in tokens.sizes() if i not in present]
            page_offsets = np.zeros(len(ids) + 1, np.int64)
            np.cumsum(lengths, out=page_offsets[1:])
            self._loaded = _Loaded(
                key,
                gen,
                cents,
                ids,
                {i: j for j, i in enumerate(ids)},
                offsets,
                owner[order],
                page_offsets,
                flat.astype(np.int32, copy=False),
                uncoded,
            )
            return self._loaded

    # -- files and SQLite ----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._loaded = None
            if conn is not None:
                conn.close()

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._folder / "index.sqlite3", timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"centroid index {self._folder}: cannot open its index: {e}") from e
        self._conn = conn
        return conn

    def _settings(self, conn: sqlite3.Connection) -> dict[str, str]:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM settings")}

    def _set(self, conn: sqlite3.Connection, **values: int) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
            [(k, str(v)) for k, v in values.items()],
        )

    def _centroid_path(self, gen: int) -> Path:
        return self._folder / f"centroids-{int(gen):06d}.npy"

    def _centroids(self, gen: int) -> np.ndarray:
        path = self._centroid_path(gen)
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise StoreError(
                f"centroid index {self._folder}: cannot read {path.name}: {e}; delete the folder "
                f"{self._folder} and it is rebuilt from the tokens"
            ) from e

    def _remove_stale_files(self, keep: set[int]) -> None:
        for path in self._folder.glob("centroids-*"):
            stem = path.name.split(".")[0].removeprefix("centroids-")
            if path.suffix == ".tmp" or not stem.isdigit() or int(stem) not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _transaction(self, conn: sqlite3.Connection, action: str) -> contextlib.AbstractContextManager[None]:
        return sqlite_transaction(conn, f"centroid index {self._folder}", action)

    @contextlib.contextmanager
    def _read(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One snapshot for the settings and codes read together."""
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def __repr__(self) -> str:
        return f"CentroidIndex({str(self._folder)!r})"


def search(
    query: np.ndarray,
    tokens: TokenStore,
    index: CentroidIndex,
    k: int = 10,
    *,
    candidates: int = DEFAULT_CANDIDATES,
    nprobe: int = DEFAULT_NPROBE,
    wanted: set[str] | None = None,
    device: str | None = None,
) -> list[tuple[str, float]]:
    """Top ``k`` ``(page id, MaxSim)`` by centroid candidates then exact MaxSim; exhaustive when
    the index has no centroids yet (a small store)."""
    from pagesight.retrieval.maxsim import maxsim

    picked = index.candidates(query, tokens, candidates=max(k, candidates), nprobe=nprobe, wanted=wanted)
    if picked is None:
        order = None if wanted is None else sorted(tokens.present(sorted(wanted)))
        ids: list[str] = []
        parts = []
        for part_ids, packed in tokens.iter_packed(order):
            ids.extend(part_ids)
            parts.append(maxsim(query, packed, device=device))
        scores = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    else:
        present = tokens.present(picked)
        ids = [i for i in picked if i in present]
        if not ids:
            return []
        # gathered in storage order: pages written together come out as one contiguous view
        ids, packed = tokens.packed(ids)
        scores = maxsim(query, packed, device=device)
    if not ids:
        return []
    cut = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    best = cut[np.lexsort((cut, -scores[cut]))]
    return [(ids[int(i)], float(scores[int(i)])) for i in best]


# -- helpers ---------------------------------------------------------------------------------------


def _centroid_interaction(
    sims: np.ndarray, page_offsets: np.ndarray, page_codes: np.ndarray, pages: np.ndarray
) -> np.ndarray:
    """``sum_i max_{c in page} sims[i, c]`` for each of ``pages`` (their distinct centroids ``c``)."""
    starts, stops = page_offsets[pages], page_offsets[pages + 1]
    lengths = stops - starts
    bounds = np.zeros(len(pages) + 1, np.int64)
    np.cumsum(lengths, out=bounds[1:])
    flat = np.repeat(starts - bounds[:-1], lengths) + np.arange(int(bounds[-1]))
    gathered = sims[:, page_codes[flat]]  # (q, codes of the pages)
    best = np.maximum.reduceat(gathered, bounds[:-1], axis=1)  # every page has >= 1 code
    return best.sum(axis=0)


def _rows(values: np.ndarray, scales: np.ndarray | None, pick: np.ndarray | slice) -> np.ndarray:
    """Rows ``pick`` of stored tokens as float32 (int8 rows times their scale)."""
    out = np.asarray(values[pick], np.float32)
    if scales is not None:
        out *= np.asarray(scales[pick], np.float32)[:, None]
    return out


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _SQL_BATCH):
        yield items[start : start + _SQL_BATCH]


def _marks(chunk: list[str]) -> str:
    return ",".join("?" * len(chunk))

"""Token-level candidates for late interaction: centroids of token vectors, inverted lists of residuals.

PLAID/WARP-style (Santhanam et al. 2022, ColBERTv2's engine; Scheerer et al. 2025, WARP):

1. **Centroids**: spherical k-means over a sample of the stored token vectors (faiss when installed,
   else numpy). Every stored token is assigned its most similar centroid ``c`` and kept, in the
   centroid's inverted list, as its page and its **residual** ``t - c`` quantized to int8 (one
   float32 scale per token): 4 + 4 + ``dim`` bytes a token, about half a float16 token.
2. **Candidates**: each query token ``q`` probes its ``nprobe`` most similar centroids and scores
   every token in their lists as ``q . c + scale * (q . residual)`` (the token's similarity within
   int8 rounding). A page's approximate MaxSim sums, per query token, its best probed token, or,
   where none of its tokens were probed, the similarity of the best centroid not probed (WARP's
   missing-similarity estimate). The top ``candidates`` pages go on.
3. **Exact MaxSim** on the survivors' stored tokens (:func:`search`).

Use::

    from pagesight.retrieval.store.centroids import CentroidIndex, search

    index = CentroidIndex("index/tokens/centroids")
    with tokens.locked():
        index.sync(tokens)                 # trains once the store is big enough, codes new pages
    hits = search(query, tokens, index, k=10)   # [(page id, MaxSim score)], best first

Layout of the folder::

    index.sqlite3              settings (generation, its centroid count, tokens it was trained on);
                               segments (generation, number, tokens, pages);
                               pages: (page id, generation) -> (segment, page number in it)
    centroids-000001.npy       float32 (n_centroids, dim), memory-mapped at query time
    lists-000001-000007.*.npy  one segment of the inverted lists, memory-mapped: ``res`` int8
                               residuals and ``scale`` float32 in centroid order, ``page`` int32
                               (page number in the segment), ``off`` int64 (n_centroids + 1) list
                               bounds

Each :meth:`CentroidIndex.sync` codes the pages it lacks into new segments (files written, fsynced
and renamed first, then recorded in one SQLite transaction), drops the pages the token store no
longer holds (their list entries are skipped until a merge rewrites the segment), merges small
segments so a search reads few, and retrains (a new generation, coded in full, switched in one
transaction) when the store has grown ``regrow`` times past the tokens the centroids were trained
on. A crash at any point leaves a state the next ``sync`` completes (files no transaction recorded
are removed); pages the index has not coded yet (another process's write in progress, a crash) are
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

DEFAULT_NPROBE = 8
"""Centroids each query token probes (tuned on 20,000 real passages, see ``bench/late_candidates.py``)."""

DEFAULT_CANDIDATES = 64
"""Pages the approximate scores keep for exact MaxSim."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    gen INTEGER NOT NULL, seq INTEGER NOT NULL, tokens INTEGER NOT NULL, pages INTEGER NOT NULL,
    PRIMARY KEY (gen, seq)
);
CREATE TABLE IF NOT EXISTS pages (
    id TEXT NOT NULL, gen INTEGER NOT NULL, seq INTEGER NOT NULL, local INTEGER NOT NULL,
    PRIMARY KEY (id, gen)
);
"""
_PARTS = ("res", "scale", "page", "off")
_CODE_BATCH_TOKENS = 16384  # token rows assigned per matrix product
_FLAT_CENTROIDS = 4096  # more centroids: trained and assigned in two levels
_GROUP_PROBES = 4  # groups of centroids a token row is compared with (two-level assignment)
_SEGMENT_TOKENS = 1 << 19  # a coding pass writes a segment per this many tokens (at page bounds),
_SEGMENT_BYTES = 1 << 28  # and at most this many bytes of int8 residuals (3072-d tokens: 87,381)
_MAX_SEGMENTS = 8  # more per generation: the smallest are merged
_MERGE_FANIN = 4
_SQL_BATCH = 500


@dataclass(frozen=True, slots=True)
class CentroidIndexStats:
    """What a centroid index holds.

    Attributes:
        generation: the active generation (0: no centroids yet, the store is too small).
        n_centroids: centroids of the active generation.
        trained_tokens: token count of the store when those centroids were trained.
        coded_pages: pages coded with the active generation.
        coded_tokens: list entries of the active generation's segments (deleted pages' included
            until their segment is merged).
        segments: segments of the active generation.
        file_bytes: bytes of the folder (centroids, lists and the SQLite index).
    """

    generation: int
    n_centroids: int
    trained_tokens: int
    coded_pages: int
    coded_tokens: int
    segments: int
    file_bytes: int


def auto_centroids(n_tokens: int, most: int = 65536) -> int:
    """Centroid count for ``n_tokens`` token vectors: ``2 sqrt(n_tokens)`` rounded to a power of two,
    between 64 and ``most``.

    Fewer than PLAID's ``16 sqrt(n)``: a query token here scores every token of the lists it probes,
    so lists of several hundred tokens (3.3 M MiniLM tokens: 4,096 centroids, ~800 tokens a list)
    let 4 probes find nearly all of exact MaxSim's top pages (``bench/late_candidates.py``). A list
    then grows as ``sqrt(n_tokens)``, and so does the work of a search. Above 4,096 centroids,
    training and coding go through two levels (:func:`train_centroids`), so building stays about
    ``n_tokens * sqrt(n_centroids) * dim``.
    """
    k = 2 ** int(np.round(np.log2(max(1.0, 2.0 * np.sqrt(max(1, n_tokens))))))
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

    Above 4,096 centroids, hierarchically: ``sqrt(n_centroids)`` coarse centroids first, then each
    coarse cluster's rows get their share of the centroids (by row count), fitted to them alone.
    Each assignment then compares a row with ``sqrt(n_centroids)`` centroids instead of all of
    them, which is what makes 8,192 to 65,536 centroids affordable on a CPU.
    """
    x = np.ascontiguousarray(sample, np.float32)
    k = int(min(n_centroids, len(x)))
    if k < 1:
        raise ValueError("train_centroids needs at least one sample row")
    if k > _FLAT_CENTROIDS:
        return _train_two_level(x, k, iterations=iterations, seed=seed, method=method)
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
        # faiss.Clustering, not faiss.Kmeans: Kmeans reads its result through faiss's std::vector
        # proxy, which PyMuPDF's SWIG module replaces when it is imported after faiss (both share
        # SWIG's type table), and then fails; the index's rows come back as a numpy array
        clus = faiss.Clustering(x.shape[1], k)
        clus.niter = iterations
        clus.spherical = True
        clus.seed = seed
        clus.verbose = False
        clus.max_points_per_centroid = max(256, len(x) // k + 1)
        flat = faiss.IndexFlatIP(x.shape[1])
        clus.train(x, flat)
        cents = np.asarray(flat.reconstruct_n(0, flat.ntotal), np.float32)
    else:
        rng = np.random.default_rng(seed)
        cents = x[rng.choice(len(x), size=k, replace=False)].copy()
        for _ in range(iterations):
            assign = _Assigner(cents).assign(x)
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


def _train_two_level(
    x: np.ndarray, k: int, *, iterations: int, seed: int, method: Literal["auto", "faiss", "numpy"]
) -> np.ndarray:
    """``k`` centroids as ``sqrt(k)`` coarse clusters, each split by its own k-means."""
    n_coarse = int(round(np.sqrt(k)))
    coarse = train_centroids(x, n_coarse, iterations=iterations, seed=seed, method=method)
    group = _Assigner(coarse).assign(x)
    counts = np.bincount(group, minlength=len(coarse))
    share = _shares(counts, k)
    parts = [
        train_centroids(
            x[group == g], int(share[g]), iterations=iterations, seed=seed + 1 + int(g), method=method
        )
        for g in np.flatnonzero(share)
    ]
    return np.ascontiguousarray(np.concatenate(parts), np.float32)


def _shares(counts: np.ndarray, k: int) -> np.ndarray:
    """``k`` split over groups of ``counts`` rows, proportionally (largest remainders), each
    non-empty group at least one and none more than its rows."""
    counts = counts.astype(np.int64)
    k = int(min(k, counts.sum()))
    want = counts * (k / max(1, counts.sum()))
    share = np.minimum(counts, np.maximum(np.floor(want).astype(np.int64), (counts > 0).astype(np.int64)))
    while share.sum() > k:  # the minimum of one pushed the sum over: take from the largest
        share[int(np.argmax(share))] -= 1
    room = counts - share
    order = np.argsort(-(want - share), kind="stable")
    for g in order:
        if share.sum() >= k:
            break
        if room[g] > 0:
            share[g] += 1
            room[g] -= 1
    return share


class _Assigner:
    """Nearest centroid of token rows: by one product with every centroid up to 4,096 centroids;
    above, in two levels (``sqrt(K)`` groups of centroids, each row compared with the centroids of
    its ``_GROUP_PROBES`` most similar groups), which finds the nearest centroid for nearly every
    row (``tests/retrieval/test_centroids.py`` measures how many) at a fraction of the products.

    A row given a near but not the nearest centroid is still scored exactly (its residual is taken
    from the centroid it was given); it only sits in a list a query token may probe less often.
    """

    def __init__(self, cents: np.ndarray, seed: int = 0) -> None:
        self.cents = np.ascontiguousarray(cents, np.float32)
        self.groups: np.ndarray | None = None
        self.members: list[np.ndarray] = []
        if len(self.cents) > _FLAT_CENTROIDS:
            n_groups = int(round(np.sqrt(len(self.cents))))
            self.groups = train_centroids(self.cents, n_groups, seed=seed, method="numpy")
            near = _Assigner(self.groups).assign(self.cents)
            self.members = [np.flatnonzero(near == g) for g in range(len(self.groups))]

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Index of the (near-)most similar centroid for each row of ``x`` (float32 products in blocks)."""
        out = np.empty(len(x), np.int32)
        for a in range(0, len(x), _CODE_BATCH_TOKENS):
            block = np.asarray(x[a : a + _CODE_BATCH_TOKENS], np.float32)
            out[a : a + len(block)] = self.nearest(block)
        return out

    def nearest(self, block: np.ndarray) -> np.ndarray:
        if self.groups is None:
            return np.argmax(block @ self.cents.T, axis=1).astype(np.int32)
        probes = min(_GROUP_PROBES, len(self.groups))
        gsims = block @ self.groups.T
        top = np.argpartition(-gsims, probes - 1, axis=1)[:, :probes]
        flat = top.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(len(self.groups) + 1))
        best = np.full(len(block), -np.inf, np.float32)
        out = np.zeros(len(block), np.int32)
        for g in range(len(self.groups)):
            lo, hi = int(bounds[g]), int(bounds[g + 1])
            if lo == hi or not len(self.members[g]):
                continue
            rows = order[lo:hi] // probes
            sims = block[rows] @ self.cents[self.members[g]].T
            j = np.argmax(sims, axis=1)
            val = sims[np.arange(len(rows)), j]
            better = val > best[rows]
            best[rows[better]] = val[better]
            out[rows[better]] = self.members[g][j[better]]
        return out


def _code(
    values: np.ndarray, scales: np.ndarray | None, assigner: _Assigner
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(centroid ids int32, residuals int8, scales float32)`` of stored token rows ``values``
    (their storage dtype; int8 rows with their ``scales``), decoded a block at a time."""
    n = len(values)
    cents = assigner.cents
    assign = np.empty(n, np.int32)
    res = np.empty(values.shape, np.int8)
    scale = np.empty(n, np.float32)
    for a in range(0, n, _CODE_BATCH_TOKENS):
        block = _rows(values, scales, slice(a, a + _CODE_BATCH_TOKENS))
        near = assigner.nearest(block)
        r = block - cents[near]
        top = np.abs(r).max(axis=1)
        sc = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)
        assign[a : a + len(r)] = near
        res[a : a + len(r)] = np.rint(r / sc[:, None]).astype(np.int8)
        scale[a : a + len(r)] = sc
    return assign, res, scale


@dataclass(slots=True)
class _Segment:
    """One segment of the inverted lists, memory-mapped."""

    seq: int
    res: np.ndarray  # (n_tokens, dim) int8, centroid after centroid
    scale: np.ndarray  # (n_tokens,) float32
    page: np.ndarray  # (n_tokens,) int32: page number in the segment
    off: np.ndarray  # (n_centroids + 1,) int64: list bounds
    to_index: np.ndarray  # (pages of the segment,) int32: index page number, -1 gone or moved


@dataclass(slots=True)
class _Loaded:
    """The inverted lists of one state of the index."""

    key: tuple[int, ...]
    gen: int
    centroids: np.ndarray  # (K, dim) float32, memory-mapped
    ids: list[str]  # index page number -> page id
    position: dict[str, int]
    segments: list[_Segment]
    uncoded: list[str]  # pages with tokens but no codes yet: scored exactly


class CentroidIndex:
    """Centroids of a token store's vectors and inverted lists of the tokens' residuals.

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
        self._assigner_cache: tuple[tuple[int, ...], _Assigner] | None = None

    @property
    def folder(self) -> Path:
        return self._folder

    # -- writing -------------------------------------------------------------------------------

    def sync(self, tokens: TokenStore, changed: Sequence[str] = ()) -> int:
        """Bring the index in line with ``tokens`` (whose lock the caller holds); return pages coded.

        Drops pages the token store no longer holds, trains centroids when the store first reaches
        ``min_pages`` pages or has grown ``regrow`` times, codes every page the active generation
        lacks, and merges segments. ``changed``: ids whose tokens were just (re)written; their old
        entries go.
        """
        with self._lock:
            conn = self._open()
            sizes = tokens.sizes()
            self._writes += 1
            self._remove_unrecorded(conn)
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
                gen = nxt
            if gen > 0:
                self._merge(conn, gen)
            return coded

    def _remove_gone(self, conn: sqlite3.Connection, sizes: dict[str, int], changed: Sequence[str]) -> None:
        have = {str(r[0]) for r in conn.execute("SELECT DISTINCT id FROM pages")}
        gone = sorted((have - sizes.keys()) | (have & set(changed)))
        if gone:
            with self._transaction(conn, "dropping deleted pages"):
                for chunk in _chunks(gone):
                    conn.execute(f"DELETE FROM pages WHERE id IN ({_marks(chunk)})", chunk)

    def _train(
        self, conn: sqlite3.Connection, tokens: TokenStore, sizes: dict[str, int], total: int, gen: int
    ) -> int:
        """Fit a new generation's centroids, write them durably, record it as ``next_gen``."""
        k = self.n_centroids or auto_centroids(total)
        sample = self._sample(tokens, sizes, total, k * self.sample_per_centroid)
        cents = train_centroids(sample, k, seed=self.seed)
        nxt = gen + 1
        self._write_arrays({self._centroid_path(nxt): cents}, "centroids")
        with self._transaction(conn, "recording new centroids"):
            conn.execute("DELETE FROM pages WHERE gen = ?", (nxt,))
            conn.execute("DELETE FROM segments WHERE gen = ?", (nxt,))
            self._set(conn, next_gen=nxt, next_trained_tokens=total, next_centroids=len(cents))
        self._remove_unrecorded(conn)
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
        """Code the pages generation ``gen`` lacks into new segments; return how many."""
        have = {str(r[0]) for r in conn.execute("SELECT id FROM pages WHERE gen = ?", (gen,))}
        todo = [i for i in sizes if i not in have]
        if not todo:
            return 0
        assigner = self._assigner(gen)
        cents = assigner.cents
        done = 0
        segment_tokens = max(1, min(_SEGMENT_TOKENS, _SEGMENT_BYTES // max(1, int(cents.shape[1]))))
        pending: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        pending_tokens = 0
        for ids, packed in tokens.iter_packed(todo):
            start = 0
            while start < len(ids):  # whole pages, about _SEGMENT_TOKENS token rows at a time
                stop, rows = start, 0
                while stop < len(ids) and (rows == 0 or pending_tokens + rows < segment_tokens):
                    rows += int(packed.offsets[stop + 1] - packed.offsets[stop])
                    stop += 1
                a, b = int(packed.offsets[start]), int(packed.offsets[stop])
                sc = None if packed.scales is None else packed.scales[a:b]
                assign, res, scale = _code(packed.tokens[a:b], sc, assigner)
                local = np.repeat(
                    np.arange(stop - start, dtype=np.int32), np.diff(packed.offsets[start : stop + 1])
                )
                pending.append((list(ids[start:stop]), assign, res, scale, local))
                pending_tokens += b - a
                if pending_tokens >= segment_tokens:
                    done += self._write_segment(conn, gen, len(cents), pending)
                    pending, pending_tokens = [], 0
                start = stop
        if pending:
            done += self._write_segment(conn, gen, len(cents), pending)
        return done

    def _assigner(self, gen: int) -> _Assigner:
        """The nearest-centroid finder of generation ``gen`` (its groups cost a k-means over the
        centroids above 4,096 of them: kept while the centroid file stays the same)."""
        path = self._centroid_path(gen)
        st = path.stat()
        key = (gen, st.st_ino, st.st_mtime_ns, st.st_size)
        if self._assigner_cache is None or self._assigner_cache[0] != key:
            cents = np.asarray(self._centroids(gen), np.float32)
            self._assigner_cache = (key, _Assigner(cents, seed=self.seed))
        return self._assigner_cache[1]

    def _write_segment(
        self,
        conn: sqlite3.Connection,
        gen: int,
        n_centroids: int,
        parts: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    ) -> int:
        """Write coded pages as one segment (files first, then one transaction); return pages."""
        ids: list[str] = []
        locals_ = []
        for part_ids, *_, local in parts:
            locals_.append(local + len(ids))
            ids.extend(part_ids)
        assign = np.concatenate([p[1] for p in parts])
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=n_centroids)
        off = np.zeros(n_centroids + 1, np.int64)
        np.cumsum(counts, out=off[1:])
        arrays = {
            "res": np.concatenate([p[2] for p in parts])[order],
            "scale": np.concatenate([p[3] for p in parts])[order],
            "page": np.concatenate(locals_).astype(np.int32)[order],
            "off": off,
        }
        self._record_segment(conn, gen, arrays, [(i, j) for j, i in enumerate(ids)])
        return len(ids)

    def _record_segment(
        self,
        conn: sqlite3.Connection,
        gen: int,
        arrays: dict[str, np.ndarray],
        pages: list[tuple[str, int]],
        replaces: Sequence[int] = (),
    ) -> int:
        """Write a segment's files durably, then record it and its ``(page id, local)`` pages in one
        transaction (dropping the ``replaces`` segments it merges); return its number."""
        seq = self._next_seq(conn, gen)
        self._write_arrays({self._segment_path(gen, seq, part): arrays[part] for part in _PARTS}, "lists")
        n_pages = max((local for _, local in pages), default=-1) + 1
        with self._transaction(conn, "recording coded pages"):
            conn.execute(
                "INSERT INTO segments (gen, seq, tokens, pages) VALUES (?, ?, ?, ?)",
                (gen, seq, len(arrays["page"]), n_pages),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO pages (id, gen, seq, local) VALUES (?, ?, ?, ?)",
                [(i, gen, seq, local) for i, local in pages],
            )
            for old in replaces:
                conn.execute("DELETE FROM segments WHERE gen = ? AND seq = ?", (gen, old))
        if replaces:
            self._remove_unrecorded(conn)
        return seq

    def _merge(self, conn: sqlite3.Connection, gen: int) -> None:
        """Merge the smallest segments while there are more than ``_MAX_SEGMENTS``, and rewrite any
        segment whose pages are mostly gone; deleted pages' entries are dropped."""
        for _ in range(1000):  # each round removes at least one segment or rewrites a gone one
            rows = conn.execute(
                "SELECT s.seq, s.pages, COUNT(p.id) FROM segments s LEFT JOIN pages p "
                "ON p.gen = s.gen AND p.seq = s.seq WHERE s.gen = ? GROUP BY s.seq "
                "ORDER BY s.tokens, s.seq",
                (gen,),
            ).fetchall()
            pick = [int(seq) for seq, pages, live in rows if 2 * int(live) < int(pages)]
            if len(rows) > _MAX_SEGMENTS:
                pick += [int(r[0]) for r in rows[:_MERGE_FANIN] if int(r[0]) not in pick]
            if not pick:
                return
            self._merge_segments(conn, gen, sorted(pick))

    def _merge_segments(self, conn: sqlite3.Connection, gen: int, seqs: list[int]) -> None:
        """Rewrite segments ``seqs`` as one, keeping the entries of pages still recorded there."""
        n_centroids, dim = (int(x) for x in self._centroids(gen).shape)
        live: dict[int, list[tuple[str, int]]] = {s: [] for s in seqs}
        for i, seq, local in conn.execute(
            f"SELECT id, seq, local FROM pages WHERE gen = ? AND seq IN ({_marks(seqs)})", (gen, *seqs)
        ):
            live[int(seq)].append((str(i), int(local)))
        pages: list[tuple[str, int]] = []
        segs = []
        for seq in seqs:
            seg = self._open_segment(gen, seq)
            (n_local,) = conn.execute(
                "SELECT pages FROM segments WHERE gen = ? AND seq = ?", (gen, seq)
            ).fetchone()
            remap = np.full(max(int(n_local), 1), -1, np.int32)
            for i, local in live[seq]:
                remap[local] = len(pages)
                pages.append((i, len(pages)))
            segs.append((seg, remap))
        res_parts, scale_parts, page_parts = [], [], []
        counts = np.zeros(n_centroids, np.int64)
        for c in range(n_centroids):
            for seg, remap in segs:
                lo, hi = int(seg.off[c]), int(seg.off[c + 1])
                if lo == hi:
                    continue
                new = remap[seg.page[lo:hi]]
                keep = new >= 0
                if not keep.any():
                    continue
                res_parts.append(np.asarray(seg.res[lo:hi])[keep])
                scale_parts.append(np.asarray(seg.scale[lo:hi])[keep])
                page_parts.append(new[keep])
                counts[c] += int(keep.sum())
        off = np.zeros(n_centroids + 1, np.int64)
        np.cumsum(counts, out=off[1:])
        arrays = {
            "res": np.concatenate(res_parts) if res_parts else np.zeros((0, dim), np.int8),
            "scale": np.concatenate(scale_parts) if scale_parts else np.zeros(0, np.float32),
            "page": np.concatenate(page_parts) if page_parts else np.zeros(0, np.int32),
            "off": off,
        }
        if not pages:  # nothing live: just drop them
            with self._transaction(conn, "dropping emptied segments"):
                for seq in seqs:
                    conn.execute("DELETE FROM segments WHERE gen = ? AND seq = ?", (gen, seq))
            self._remove_unrecorded(conn)
            return
        self._record_segment(conn, gen, arrays, pages, replaces=seqs)

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
            conn.execute("DELETE FROM pages WHERE gen != ?", (new,))
            conn.execute("DELETE FROM segments WHERE gen != ?", (new,))
        self._remove_unrecorded(conn)

    def reset(self) -> None:
        """Forget everything (the next :meth:`sync` retrains once the store is big enough)."""
        with self._lock:
            conn = self._open()
            with self._transaction(conn, "resetting"):
                conn.execute("DELETE FROM pages")
                conn.execute("DELETE FROM segments")
                conn.execute("DELETE FROM settings")
            self._remove_unrecorded(conn)
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
            (pages,) = conn.execute("SELECT COUNT(*) FROM pages WHERE gen = ?", (gen,)).fetchone()
            n_segments, n_tokens = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM segments WHERE gen = ?", (gen,)
            ).fetchone()
            size = sum(p.stat().st_size for p in self._folder.glob("*") if p.is_file())
            return CentroidIndexStats(
                gen,
                int(s.get("n_centroids", "0")),
                int(s.get("trained_tokens", "0")),
                int(pages),
                int(n_tokens),
                int(n_segments),
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

        The ``candidates`` best pages by approximate MaxSim over the probed lists, then every page
        not coded yet. ``wanted``: only these pages.
        """
        check_int("candidates", candidates, least=1)
        check_int("nprobe", nprobe, least=1)
        state = self._state(tokens)
        if state is None:
            return None
        scores, hit = _approximate(np.asarray(query, np.float32), state, nprobe)
        if wanted is not None:
            keep = np.zeros(len(hit), bool)
            keep[[state.position[i] for i in wanted if i in state.position]] = True
            hit &= keep
        found = np.flatnonzero(hit)
        if len(found) > candidates:
            found = found[np.argpartition(-scores[found], candidates - 1)[:candidates]]
        out = [state.ids[int(j)] for j in found]
        extra = state.uncoded if wanted is None else [i for i in state.uncoded if i in wanted]
        return out + extra

    def _state(self, tokens: TokenStore) -> _Loaded | None:
        for attempt in range(3):
            try:
                return self._load(tokens)
            except FileNotFoundError:  # another process merged segments after our snapshot
                if attempt == 2:
                    raise StoreError(
                        f"centroid index {self._folder}: its segment files keep changing; retry the search"
                    ) from None
        return None  # pragma: no cover

    def _load(self, tokens: TokenStore) -> _Loaded | None:
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
                rows = conn.execute("SELECT id, seq, local FROM pages WHERE gen = ?", (gen,)).fetchall()
                seg_rows = conn.execute(
                    "SELECT seq, pages FROM segments WHERE gen = ? ORDER BY seq", (gen,)
                ).fetchall()
            cents = self._centroids(gen)
            ids = [str(r[0]) for r in rows]
            maps = {int(seq): np.full(int(n), -1, np.int32) for seq, n in seg_rows}
            for j, (_, seq, local) in enumerate(rows):
                if int(seq) in maps:
                    maps[int(seq)][int(local)] = j
            segments = []
            for seq, _ in seg_rows:
                seg = self._open_segment(gen, int(seq))
                seg.to_index = maps[int(seq)]
                segments.append(seg)
            present = set(ids)
            uncoded = [i for i in tokens.sizes() if i not in present]
            self._loaded = _Loaded(key, gen, cents, ids, {i: j for j, i in enumerate(ids)}, segments, uncoded)
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

    def _next_seq(self, conn: sqlite3.Connection, gen: int) -> int:
        (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM segments WHERE gen = ?", (gen,)).fetchone()
        return int(top) + 1

    def _centroid_path(self, gen: int) -> Path:
        return self._folder / f"centroids-{int(gen):06d}.npy"

    def _segment_path(self, gen: int, seq: int, part: str) -> Path:
        return self._folder / f"lists-{int(gen):06d}-{int(seq):06d}.{part}.npy"

    def _centroids(self, gen: int) -> np.ndarray:
        return self._load_array(self._centroid_path(gen))

    def _open_segment(self, gen: int, seq: int) -> _Segment:
        res, scale, page, off = (self._load_array(self._segment_path(gen, seq, p)) for p in _PARTS)
        return _Segment(seq, res, scale, page, off, np.zeros(0, np.int32))

    def _load_array(self, path: Path) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            raise StoreError(
                f"centroid index {self._folder}: cannot read {path.name}: {e}; delete the folder "
                f"{self._folder} and it is rebuilt from the tokens"
            ) from e

    def _write_arrays(self, arrays: dict[Path, np.ndarray], what: str) -> None:
        """Write each array to a temporary file, fsync, rename into place, fsync the folder."""
        try:
            for path, array in arrays.items():
                tmp = path.with_suffix(".tmp")
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(array))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            fsync_dir(self._folder)
        except OSError as e:
            raise StoreError(f"centroid index {self._folder}: writing {what} failed: {e}") from e

    def _remove_unrecorded(self, conn: sqlite3.Connection) -> None:
        """Delete files no recorded generation or segment owns (torn writes, merged, retired)."""
        s = self._settings(conn)
        gens = {int(s.get("gen", "0")), int(s.get("next_gen", "0"))} - {0}
        segs = {(int(g), int(q)) for g, q in conn.execute("SELECT gen, seq FROM segments")}
        for path in self._folder.glob("*"):
            name = path.name
            keep = False
            if name.endswith(".npy") and name.startswith("centroids-"):
                stem = name.removeprefix("centroids-").removesuffix(".npy")
                keep = stem.isdigit() and int(stem) in gens
            elif name.endswith(".npy") and name.startswith("lists-"):
                parts = name.removeprefix("lists-").split(".")[0].split("-")
                keep = (
                    len(parts) == 2
                    and all(p.isdigit() for p in parts)
                    and (
                        int(parts[0]),
                        int(parts[1]),
                    )
                    in segs
                )
            elif not (name.endswith(".tmp") and name.startswith(("centroids-", "lists-"))):
                continue  # the SQLite files and anything else
            if not keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _transaction(self, conn: sqlite3.Connection, action: str) -> contextlib.AbstractContextManager[None]:
        return sqlite_transaction(conn, f"centroid index {self._folder}", action)

    @contextlib.contextmanager
    def _read(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One snapshot for the settings and lists read together."""
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


def _approximate(q: np.ndarray, state: _Loaded, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """``(approximate MaxSim per index page, whether any of its tokens was probed)``.

    Per query token: its best probed token (``q . c + scale * (q . residual)``), else the
    similarity of the best centroid it did not probe.
    """
    n = len(state.ids)
    sims = q @ np.asarray(state.centroids).T  # (q, K)
    n_cent = sims.shape[1]
    probe = min(nprobe, n_cent)
    if probe < n_cent:
        part = np.argpartition(-sims, probe, axis=1)
        top = part[:, :probe]
        miss = np.take_along_axis(sims, part[:, probe : probe + 1], axis=1)[:, 0]
    else:
        top = np.broadcast_to(np.arange(n_cent), sims.shape)
        miss = sims.min(axis=1)
    probed = np.zeros(sims.shape, bool)
    np.put_along_axis(probed, top, True, axis=1)
    best = np.repeat(miss.astype(np.float32)[:, None], n, axis=1)  # (q, n)
    hit = np.zeros(n, bool)
    flat_at: list[np.ndarray] = []
    flat_val: list[np.ndarray] = []
    for c in np.flatnonzero(probed.any(axis=0)):
        rows = np.flatnonzero(probed[:, c])
        qc = q[rows].T  # (dim, m)
        base = sims[rows, c]
        for seg in state.segments:
            lo, hi = int(seg.off[c]), int(seg.off[c + 1])
            if lo == hi:
                continue
            pages = seg.to_index[seg.page[lo:hi]]
            s = (np.asarray(seg.res[lo:hi], np.float32) @ qc) * seg.scale[lo:hi, None] + base
            live = pages >= 0
            if not live.all():
                pages, s = pages[live], s[live]
            hit[pages] = True
            flat_at.append((rows[None, :] * n + pages[:, None]).ravel())
            flat_val.append(s.ravel())
    if flat_at:
        np.maximum.at(best.reshape(-1), np.concatenate(flat_at), np.concatenate(flat_val))
    return best.sum(axis=0), hit


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


def _marks(chunk: Sequence[object]) -> str:
    return ",".join("?" * len(chunk))

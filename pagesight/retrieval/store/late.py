"""The late-interaction page store: summary vectors in Chroma, token matrices beside it, MaxSim search.

Install::

    pip install "pagesight[chroma]"

Use::

    from pagesight.retrieval.store import MultiVectorStore

    with MultiVectorStore("index/") as store:          # Chroma in ./index, tokens in ./index/tokens
        store.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
        query = encoder.encode_queries(["where are usb sticks mounted"])[0]      # (q, d)
        hits = store.search(query, k=5, embedder=encoder.info)   # Chroma candidates, exact MaxSim
        hits[0].source, hits[0].page, hits[0].score              # score = MaxSim, best first
        store.search(query, k=5, embedder=encoder.info, exhaustive=True)   # MaxSim on every page

How it is laid out:

- one :class:`~pagesight.retrieval.store.PageStore` record per page (text, metadata, image file) whose
  vector is a *summary* of the page's tokens, used to propose candidates: the mean of the unit token
  vectors, renormalized (``summary="mean"``), or a MUVERA fixed-dimensional encoding
  (``summary="muvera"``, Dhulipala et al. 2024);
- a :class:`~pagesight.retrieval.store.tokens.TokenStore` with each page's token matrix, stored
  float16 (default), float32 or int8, optionally pooled (``pool_factor`` 2-4 merges similar tokens at
  index time: a half to a quarter of the bytes for a small loss of quality, see ``bench/storage.py``).

Writes go tokens, then token index, then Chroma, so a crash never leaves a Chroma record without
tokens; opening a store reconciles what a crash left behind (:meth:`MultiVectorStore.reconcile`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError, InvalidVectorError, StoreError, StoreMismatchError
from pagesight.retrieval.store.base import StoreBackend
from pagesight.retrieval.store.centroids import CentroidIndex
from pagesight.retrieval.store.health import StoreHealth
from pagesight.retrieval.store.pages import PageStore, check_pages
from pagesight.retrieval.store.tokens import (
    StorageDtype,
    TokenStore,
    check_token_matrix,
    inspect_token_folder,
)
from pagesight.types import EmbedderInfo, Hit, Page, SourceInfo, as_kind

if TYPE_CHECKING:
    from pagesight.retrieval.bm25 import SegmentedBM25
    from pagesight.retrieval.muvera import Muvera

__all__ = ["MultiVectorStore", "ReconcileReport", "SummaryMethod"]

logger = logging.getLogger(__name__)

SummaryMethod = Literal["mean", "muvera"]
"""How a page's tokens become the one vector Chroma searches for candidates."""

CandidateSource = Literal["summary", "centroids"]
"""Where two-stage search takes its candidates: Chroma's summary vectors, or the token centroid index."""

_TOKEN_DIM_KEY = "pagesight:token_dimensions"
_SUMMARY_KEY = "pagesight:summary"
_MUVERA_KEY = "pagesight:muvera"
_STORAGE_KEY = "pagesight:storage"
_POOL_KEY = "pagesight:pool_factor"
_CANDIDATES_KEY = "pagesight:candidates_from"
_COMPACT_DEAD_FRACTION = 0.5
_MAX_POOL_FACTOR = 16


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What :meth:`MultiVectorStore.reconcile` repaired.

    Attributes:
        records_without_tokens: ids of Chroma records that had no tokens; deleted (with their images).
        tokens_without_record: ids whose tokens had no Chroma record (a write interrupted between the
            token index and Chroma); dropped from the token index.
        compacted_bytes: segment bytes given back by the compaction that followed, if any.
    """

    records_without_tokens: tuple[str, ...] = ()
    tokens_without_record: tuple[str, ...] = ()
    compacted_bytes: int = 0

    @property
    def fixed(self) -> bool:
        """Whether anything was repaired."""
        return bool(self.records_without_tokens or self.tokens_without_record)


@dataclass(frozen=True, slots=True)
class _Options:
    summary: SummaryMethod
    storage: StorageDtype
    pool_factor: int
    muvera: dict[str, Any] | None  # the Muvera config (``Muvera.config()``) once known
    candidates_from: CandidateSource = "summary"

    def describe(self) -> str:
        text = f"summary={self.summary!r}, storage={self.storage!r}, pool_factor={self.pool_factor}"
        if self.candidates_from != "summary":
            text += f", candidates_from={self.candidates_from!r}"
        if self.summary == "muvera" and self.muvera:
            text += f", muvera={self.muvera}"
        return text


class MultiVectorStore:
    """Late-interaction pages: candidates from Chroma by a summary vector, ranked by exact MaxSim.

    The API mirrors :class:`~pagesight.retrieval.store.PageStore`; vectors are token matrices
    (``(n_tokens, dim)`` unit rows, one per page) and ``Hit.score`` is the MaxSim score
    (sum over query tokens of the best page-token dot product), not a cosine.

    The collection's metadata records the late-interaction embedder (model, revision, token
    dimension, kind) and the store's options (summary method and MUVERA configuration, storage
    dtype, pool factor). Options left ``None`` are read from an existing store (defaults for a new
    one: ``"mean"``, ``"float16"``, 1); an option given with another value than recorded, or another
    embedder, raises :class:`StoreMismatchError` naming both.

    Token matrices live in ``token_dir``: ``<path>/tokens`` for an embedded store. For a server
    store (``url``) they stay on this machine like the page images, by default in
    ``$XDG_CACHE_HOME/pagesight/tokens/<host>-<port>/<collection>``; several machines sharing one
    Chroma server must share that folder (pass ``token_dir``).

    The constructor is cheap. The first call that needs the store opens both parts and runs
    :meth:`reconcile` once.

    Example:
        >>> store = MultiVectorStore("index/", storage="int8", pool_factor=2)    # doctest: +SKIP
        >>> store.add_source(pages, matrices, embedder=encoder.info)              # doctest: +SKIP
        >>> [(h.page, round(h.score, 1)) for h in store.search(q, k=2, embedder=encoder.info)]
        [(3, 11.4), (1, 9.8)]                                                     # doctest: +SKIP

    Args:
        path: folder of an embedded store (created on first write).
        url: ``http://host:port`` of a Chroma server; give exactly one of ``path`` and ``url``.
        headers: HTTP headers for the server (``{"Authorization": "Bearer TOKEN"}``), as
            :class:`PageStore`.
        tenant: the server's tenant (default: Chroma's ``default_tenant``).
        database: the tenant's database (default: Chroma's ``default_database``); the local token
            folder is kept per tenant and database.
        image_dir: folder for page images, or an fsspec URL (``s3://bucket/pages``), as
            :class:`PageStore`.
        token_dir: folder of the token store (defaults above).
        collection: the Chroma collection's name.
        summary: ``"mean"`` (mean of token vectors) or ``"muvera"`` (MUVERA FDE) candidates.
        storage: token storage, ``"float16"``, ``"float32"`` or ``"int8"`` (per-token scale).
        pool_factor: 1 keeps every token; 2-4 pools tokens at index time (tokens / factor kept).
        muvera: keyword arguments of :class:`~pagesight.retrieval.muvera.Muvera` (``k_sim``,
            ``dim_proj``, ``r_reps``, ``seed``); implies ``summary="muvera"``.
        backend: the records' backend instead of a Chroma one built from ``path``/``url``/...
            (as :class:`PageStore`'s ``backend``).
        candidates_from: where two-stage search finds candidates: ``"summary"`` (default: Chroma's
            summary vectors) or ``"centroids"`` (a token-level centroid index in
            ``<token_dir>/centroids``, PLAID-style, see
            :mod:`~pagesight.retrieval.store.centroids`; exhaustive and exact while the store has
            fewer than ``centroid_min_pages`` pages).
        image_storage_options: fsspec filesystem options of an image URL, as :class:`PageStore`.

    Attributes:
        multivector: ``True``: a token matrix per page (``False`` on :class:`PageStore`).
        centroid_min_pages: ``candidates_from="centroids"``: pages from which centroids are trained.
    """

    multivector = True
    centroid_min_pages = 1000

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        database: str | None = None,
        image_dir: str | Path | None = None,
        token_dir: str | Path | None = None,
        collection: str = "pagesight",
        summary: SummaryMethod | None = None,
        storage: StorageDtype | None = None,
        pool_factor: int | None = None,
        muvera: dict[str, Any] | None = None,
        backend: StoreBackend | None = None,
        candidates_from: CandidateSource | None = None,
        image_storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if summary is not None:
            check_choice("summary", summary, get_args(SummaryMethod))
        if candidates_from is not None:
            check_choice("candidates_from", candidates_from, get_args(CandidateSource))
        if storage is not None:
            check_choice("storage", storage, get_args(StorageDtype))
        check_int("pool_factor", pool_factor, least=1, most=_MAX_POOL_FACTOR, optional=True)
        if muvera is not None:
            if summary == "mean":
                raise ConfigurationError("`muvera` settings only apply with summary='muvera'")
            summary = "muvera"
        self._pages = PageStore(
            path,
            url=url,
            headers=headers,
            tenant=tenant,
            database=database,
            image_dir=image_dir,
            collection=collection,
            backend=backend,
            image_storage_options=image_storage_options,
        )
        if candidates_from == "centroids" and hasattr(self._pages.backend, "query_tokens"):
            raise ConfigurationError(
                f"candidates_from='centroids' builds a token index beside pagesight's own token "
                f"segments; {self._pages.backend.location} runs MaxSim itself (its prefetch, then "
                "MAX_SIM), so leave candidates_from out"
            )
        if token_dir is not None:
            self._token_dir = Path(token_dir).expanduser()
        else:
            self._token_dir = self._pages.backend.local_dir("tokens")
        self._given_summary: SummaryMethod | None = summary
        self._given_storage: StorageDtype | None = storage
        self._given_pool: int | None = pool_factor
        self._given_muvera = dict(muvera) if muvera is not None else None
        self._given_candidates: CandidateSource | None = candidates_from
        self._index: CentroidIndex | None = None
        self._lock = threading.RLock()
        self._tokens: TokenStore | None = None
        self._options: _Options | None = None
        self._muvera: Muvera | None = None
        self._last_report: ReconcileReport | None = None
        self._recorded: EmbedderInfo | None = None  # embedder of the stored pages, once read

    # -- public API ----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store's folder or server URL and collection, as error messages name it."""
        return self._pages.location

    @property
    def image_dir(self) -> Path:
        """The folder that holds the page images."""
        return self._pages.image_dir

    @property
    def image_url(self) -> str | None:
        """The fsspec URL of the page images, or ``None`` (see :attr:`PageStore.image_url`)."""
        return self._pages.image_url

    @property
    def token_dir(self) -> Path:
        """The folder of the token store."""
        return self._token_dir

    @property
    def page_store(self) -> PageStore:
        """The Chroma side: one record per page with its summary vector."""
        return self._pages

    @property
    def token_store(self) -> TokenStore:
        """The token side (opens the store)."""
        return self._open()

    @property
    def options(self) -> dict[str, Any]:
        """The options in force: ``summary``, ``storage``, ``pool_factor``, ``muvera``."""
        self._open()
        opts = cast(_Options, self._options)
        return {
            "summary": opts.summary,
            "storage": opts.storage,
            "pool_factor": opts.pool_factor,
            "muvera": opts.muvera,
            "candidates_from": opts.candidates_from,
        }

    @property
    def embedder(self) -> EmbedderInfo | None:
        """The late-interaction embedder the pages were written with; ``None`` while empty."""
        self._open()
        if self._pages.count() == 0:
            return None
        return _recorded_embedder(self._pages.metadata())

    @property
    def last_reconcile(self) -> ReconcileReport | None:
        """What the reconciliation run when the store was opened repaired (opens the store)."""
        self._open()
        return self._last_report

    def add_source(
        self, pages: Sequence[Page], token_matrices: Sequence[np.ndarray], *, embedder: EmbedderInfo
    ) -> None:
        """Write all pages of one source with their token matrices, or nothing.

        Everything is checked first. Then: token rows (fsynced), the token index (one commit), the
        Chroma records (summary vector, text, metadata, image). If the Chroma step fails, the token
        entries this call created are dropped again. Pages of an older version of the same source are
        deleted afterwards, Chroma first, then their tokens.

        Args:
            pages: the pages of one source (same ``source`` and ``content_hash``).
            token_matrices: one float ``(n_tokens >= 1, embedder.dimensions)`` matrix per page, finite
                (the encoder's unit rows).
            embedder: the late-interaction embedder that produced them (``kind="late-interaction"``).

        Raises:
            InvalidVectorError: a matrix of the wrong shape or with NaN/infinity (names the page).
            StoreMismatchError: the store was built with another embedder or other options.
            StoreError: inconsistent pages, a missing image, or the storage failed.
        """
        if not pages:
            return
        _check_kind(embedder)
        if len(token_matrices) != len(pages):
            raise InvalidVectorError(f"got {len(pages)} pages but {len(token_matrices)} token matrices")
        source = pages[0].source
        matrices = []
        for p, m in zip(pages, token_matrices, strict=True):
            arr = check_token_matrix(m, what=f"{p.source} (page {p.page})")
            if arr.shape[1] != embedder.dimensions:
                raise InvalidVectorError(
                    f"{p.source} (page {p.page}): token vectors must have {embedder.dimensions} dimensions "
                    f"for {embedder.describe()}, got {arr.shape[1]}"
                )
            matrices.append(arr)
        with self._lock:
            tokens = self._open()
            opts = cast(_Options, self._options)
            self._check_embedder(embedder, "write")
            summary_info = self._summary_info(embedder)
            summaries = self._summarize_pages(matrices, embedder)
            check_pages(pages, summaries, summary_info)  # before anything is written
            stored = self._pool(matrices, opts.pool_factor)
            ids = [p.id for p in pages]
            content_hash = pages[0].content_hash
            self._pages.lock_for_writing()  # before the tokens: one writing process per store
            with tokens.locked():
                had_tokens = tokens.present(ids)
                older = [h.id for h in self._pages.pages(source) if h.content_hash != content_hash]
                tokens.set_owner(self._pages.collection_id())  # see TokenStore.set_owner
                tokens.put(ids, stored)
                try:
                    self._pages.add_source(
                        pages, summaries, embedder=summary_info, extra_metadata=self._record(embedder)
                    )
                except BaseException:
                    tokens.delete([i for i in ids if i not in had_tokens])
                    raise
                tokens.set_owner(self._pages.collection_id())  # recreated if it was empty
                if older:
                    tokens.delete(older)
                    self._maybe_compact(tokens)
                self._sync_index(tokens, changed=ids)

    def search(
        self,
        query_tokens: np.ndarray,
        k: int = 10,
        *,
        embedder: EmbedderInfo,
        candidates: int | None = None,
        exhaustive: bool = False,
        device: str | None = None,
        source: str | None = None,
        nprobe: int | None = None,
    ) -> list[Hit]:
        """Return the ``k`` pages with the highest MaxSim score for the query, best first.

        Two-stage by default: the ``candidates`` pages whose summary vectors are closest to the
        query's summary (Chroma), or, with ``candidates_from="centroids"``, the pages the token
        centroid index ranks best (each query token probes its ``nprobe`` nearest centroids), then
        exact MaxSim on their tokens. ``exhaustive=True`` scores every page (exact top ``k``; time
        grows with the store).

        Args:
            query_tokens: the query's token matrix ``(q, dim)``.
            k: pages to return at most.
            embedder: the embedder that produced ``query_tokens``.
            candidates: pages scored exactly; default ``max(100, 2 k)`` from the summary vectors,
                ``max(centroids.DEFAULT_CANDIDATES, 2 k)`` from centroids.
            exhaustive: score every page instead of the candidates.
            device: where MaxSim runs: ``None``/``"cpu"`` or ``"cuda"``/``"cuda:N"``.
            source: only search the pages of this source.
            nprobe: centroids each query token probes (``candidates_from="centroids"``; default 8).

        Returns:
            Hits with ``score`` = MaxSim, descending; ``[]`` for an empty store.

        Raises:
            StoreMismatchError: the store was written with another embedder.
            InvalidVectorError: wrong shape or a non-finite value.
        """
        check_int("k", k, least=1)
        check_int("candidates", candidates, least=1, optional=True)
        check_int("nprobe", nprobe, least=1, optional=True)
        _check_kind(embedder)
        query = check_token_matrix(query_tokens, what="query tokens")
        if query.shape[1] != embedder.dimensions:
            raise InvalidVectorError(
                f"query tokens must have {embedder.dimensions} dimensions for {embedder.describe()}, "
                f"got {query.shape[1]}"
            )
        from pagesight.retrieval.maxsim import maxsim

        with self._lock:
            tokens = self._open()
            self._check_embedder(embedder, "search")  # an empty store answers [] below
            summary_info = self._summary_info(embedder)
            index = self._index
        backend_search = getattr(self._pages.backend, "query_tokens", None)
        if backend_search is not None:  # the backend runs MaxSim itself (Qdrant: prefetch, then MAX_SIM)
            where = {"source": source} if source is not None else None
            summary = None if exhaustive else self._summarize_query(query, embedder)
            with self._pages.backend.errors("searching"):
                rows = backend_search(
                    query, k, where, summary=summary, candidates=candidates or max(100, 2 * k)
                )
            return [self._pages._hit(i, doc, meta, score, check=True) for i, doc, meta, score in rows if meta]
        if index is not None and not exhaustive:
            from pagesight.retrieval.store import centroids

            wanted_ids = None
            if source is not None:
                wanted_ids = {h.id for h in self._pages.pages(source)}
            found = centroids.search(
                query,
                tokens,
                index,
                k,
                candidates=candidates or max(centroids.DEFAULT_CANDIDATES, 2 * k),
                nprobe=nprobe or centroids.DEFAULT_NPROBE,
                wanted=wanted_ids,
                device=device,
            )
            by_id = {h.id: h for h in self._pages.get([i for i, _ in found])}
            return [replace(by_id[i], score=score) for i, score in found if i in by_id]
        if exhaustive:
            wanted = None
            if source is not None:  # pages whose tokens a concurrent delete has not removed yet
                wanted = sorted(tokens.present([h.id for h in self._pages.pages(source)]))
            all_ids: list[str] = []
            parts: list[np.ndarray] = []
            for ids, packed in tokens.iter_packed(wanted):
                all_ids.extend(ids)
                parts.append(maxsim(query, packed, device=device))
            if not all_ids:
                return []
            scores = np.concatenate(parts)
            top = _top(scores, k)
            hits = {h.id: h for h in self._pages.get([all_ids[i] for i in top])}
            return [replace(hits[all_ids[i]], score=float(scores[i])) for i in top if all_ids[i] in hits]
        proposed = self._pages.search(
            self._summarize_query(query, embedder),
            k=max(k, candidates or max(100, 2 * k)),
            embedder=summary_info,
            source=source,
        )
        present = tokens.present([h.id for h in proposed])
        proposed = [h for h in proposed if h.id in present]
        if not proposed:
            return []
        _, packed = tokens.packed([h.id for h in proposed])
        scores = maxsim(query, packed, device=device)
        return [replace(proposed[i], score=float(scores[i])) for i in _top(scores, k)]

    def bm25_index(self) -> SegmentedBM25:
        """The BM25 index over the page texts (see :meth:`PageStore.bm25_index`)."""
        self._open()
        return self._pages.bm25_index()

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Return the stored pages with these ids, in the order given; unknown ids are skipped."""
        self._open()
        return self._pages.get(ids)

    def get_tokens(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Return the stored token matrices (float32, after pooling and quantization) of ``ids``."""
        return self._open().get(ids)

    def pages(self, source: str | None = None) -> list[Hit]:
        """Return every stored page (or every page of ``source``), ordered by (source, page)."""
        self._open()
        return self._pages.pages(source)

    def sources(self) -> list[SourceInfo]:
        """Return the indexed sources with their page counts, sorted by source."""
        self._open()
        return self._pages.sources()

    def source_hash(self, source: str) -> str | None:
        """Return the content hash stored for ``source``, or ``None`` if it is not indexed."""
        self._open()
        return self._pages.source_hash(source)

    def source_info(self, source: str) -> SourceInfo | None:
        """Return ``source``'s pages and content hash; ``None`` if it is not indexed completely.

        As :meth:`PageStore.source_info`, and a page whose token matrix is missing or cut short
        (a deleted segment file) also makes the source incomplete, so ingest writes it again.
        """
        tokens = self._open()
        info = self._pages.source_info(source)
        if info is None:
            return None
        ids = [h.id for h in self._pages.pages(source)]
        lost = len(ids) - len(tokens.readable(ids))
        if lost:
            logger.warning(
                "%s: the token matrices of %d of its pages are missing from %s; it will be re-indexed",
                source,
                lost,
                self._token_dir,
            )
            return None
        return info

    def check(self) -> StoreHealth:
        """:meth:`PageStore.check`, plus the token side: records against token index entries, and the
        index against its segment files. Changes nothing (no reconciliation runs).
        """
        health, records = self._pages.check_records()
        if health.database_error is not None:
            return health
        if getattr(self._pages.backend, "tokens", None) is not None:  # tokens inside the records' points
            with_tokens = set(self._open().ids())
            return replace(
                health, records_without_tokens=tuple(r for r in records if r.id not in with_tokens)
            )
        report = inspect_token_folder(self._token_dir)
        if report.error is not None:
            return replace(health, token_error=report.error)
        by_id = {r.id: r for r in records}
        broken = report.broken or {}
        no_tokens = [
            replace(r, detail="no entry in the token index" if r.id not in report.ids else broken[r.id])
            for r in records
            if r.id not in report.ids or r.id in broken
        ]
        return replace(
            health,
            records_without_tokens=tuple(no_tokens),
            tokens_without_record=tuple(sorted(report.ids - by_id.keys())),
            missing_segments=report.missing_segments,
            orphan_segments=report.orphan_segments,
        )

    def repair(self) -> StoreHealth:
        """:meth:`PageStore.repair`, then drop token entries whose segment is gone and reconcile.

        Records left without tokens are deleted with their images (as :meth:`reconcile` does), so a
        plain re-index of their sources writes them again.
        """
        with self._lock:
            self._pages.repair()  # takes the write lock, kept until close
            report = inspect_token_folder(self._token_dir)
            if report.error is not None:
                return self.check()
            tokens = TokenStore(self._token_dir)
            try:
                with tokens.locked():
                    if report.broken:
                        tokens.delete(sorted(report.broken))
                    no_tokens = sorted(set(self._pages.ids()) - set(tokens.ids()))
                    if no_tokens:  # nothing can score them: delete them so a re-index writes them again
                        self._pages.delete(no_tokens)
                    no_record = sorted(set(tokens.ids()) - set(self._pages.ids()))
                    tokens.delete(no_record)
                    if report.broken or no_record or report.orphan_segments:
                        tokens.compact()  # drops the dead segments' rows (and files)
            finally:
                tokens.close()
            if no_tokens or no_record:
                logger.warning(
                    "store %s: deleted %d records without tokens and %d tokens without a record",
                    self.location,
                    len(no_tokens),
                    len(no_record),
                )
            self.close()
            return self.check()

    def source_with_hash(self, content_hash: str) -> str | None:
        """Return a source whose stored pages have ``content_hash`` (the same bytes), or ``None``."""
        self._open()
        return self._pages.source_with_hash(content_hash)

    def delete_source(self, source: str) -> int:
        """Delete every page of ``source``: Chroma records and images first, then the tokens.

        Returns:
            How many pages were removed.
        """
        with self._lock:
            tokens = self._open()
            self._pages.lock_for_writing()
            with tokens.locked():
                ids = [h.id for h in self._pages.pages(source)]
                removed = self._pages.delete_source(source)
                tokens.delete(ids)
                self._maybe_compact(tokens)
                self._sync_index(tokens)
        return removed

    def count(self) -> int:
        """Return the number of stored pages."""
        self._open()
        return self._pages.count()

    def bytes_per_page(self) -> float:
        """Mean bytes of token storage per page (int8 scales included; Chroma's summary not counted)."""
        return self._open().bytes_per_page()

    def compact(self) -> int:
        """Give back the space of deleted and replaced token rows; return the bytes freed."""
        tokens = self._open()
        with tokens.locked():
            return tokens.compact()

    def reconcile(self) -> ReconcileReport:
        """Repair what an interrupted write or delete left behind; runs once when the store opens.

        - Chroma records without tokens are deleted with their images. (The write order never
          leaves one; this covers token files lost or deleted by hand.) If the token store holds no
          pages at all while Chroma does, nothing is deleted and :class:`StoreError` is raised: the
          ``token_dir`` is most likely wrong.
        - Token index entries without a Chroma record are dropped; the segments are compacted when
          more than half of their bytes are dead.

        Returns:
            What was repaired (also logged as a warning).
        """
        with self._lock:
            tokens = self._open()
            self._pages.lock_for_writing()
            return self._reconcile(tokens)

    def close(self) -> None:
        """Release Chroma and the token index; the store reopens (and reconciles) if used again."""
        with self._lock:
            self._pages.close()
            if self._tokens is not None:
                self._tokens.close()
            if self._index is not None:
                self._index.close()
            self._index = None
            self._tokens = None
            self._options = None
            self._muvera = None
            self._recorded = None

    def __enter__(self) -> MultiVectorStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MultiVectorStore({self.location!r}, token_dir={str(self._token_dir)!r})"

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> TokenStore:
        """Resolve the options against the store, open the token store, reconcile (once)."""
        with self._lock:
            if self._tokens is not None:
                return self._tokens
            recorded = self._pages.metadata()
            count = self._pages.count()
            if count > 0 and _SUMMARY_KEY not in recorded:
                dense = self._pages.embedder
                raise StoreMismatchError(
                    f"store {self.location} holds {count} pages written by a PageStore with "
                    f"{dense.describe() if dense else 'an unknown embedder'} (one vector per page), not "
                    "late-interaction pages. Use another --store folder or collection."
                )
            opts = self._resolve(recorded if count > 0 else {})
            with self._pages.write_lock_if_free() as free:
                # Repairs need the write lock: a store another process is writing is left to it
                # (its tokens may be ahead of its Chroma records for a moment).
                return self._open_tokens(opts, count, repair=free)

    def _open_tokens(self, opts: _Options, count: int, *, repair: bool) -> TokenStore:
        """Second half of :meth:`_open`: drop leftovers, open the token store, reconcile."""
        with self._lock:
            own_tokens = getattr(self._pages.backend, "tokens", None)  # a backend that keeps tokens itself
            if own_tokens is not None:
                self._options = opts
                self._tokens = cast(TokenStore, own_tokens())
                self._last_report = self._last_report or ReconcileReport()
                return self._tokens
            if count == 0 and repair:
                # Tokens without any Chroma record are all leftovers; clear them (whatever their dtype)
                # so the requested storage can take over the folder.
                leftover = TokenStore(self._token_dir)
                try:
                    with leftover.locked():
                        if self._pages.count() == 0 and leftover.count():
                            dropped = leftover.ids()
                            leftover.delete(dropped)
                            leftover.compact()
                            logger.warning(
                                "store %s: dropped tokens of %d pages without a record (interrupted write)",
                                self.location,
                                len(dropped),
                            )
                            self._last_report = ReconcileReport(tokens_without_record=tuple(dropped))
                finally:
                    leftover.close()
            tokens = TokenStore(self._token_dir, dtype=opts.storage)
            self._options = opts
            if opts.candidates_from == "centroids":
                self._index = CentroidIndex(self._token_dir / "centroids", min_pages=self.centroid_min_pages)
            if opts.summary == "muvera" and opts.muvera is not None and "dim" in opts.muvera:
                from pagesight.retrieval.muvera import Muvera

                self._muvera = Muvera.from_config(opts.muvera)
            self._tokens = tokens
            try:
                report = self._reconcile(tokens) if repair else ReconcileReport()
            except BaseException:
                self._tokens = None
                tokens.close()
                raise
            if self._last_report is None or report.fixed:
                self._last_report = report
            return tokens

    def _resolve(self, recorded: dict[str, Any]) -> _Options:
        """The options in force: given ones checked against ``recorded``, the rest adopted or defaults."""
        rec_summary = recorded.get(_SUMMARY_KEY)
        rec_storage = recorded.get(_STORAGE_KEY)
        rec_pool = recorded.get(_POOL_KEY)
        rec_muvera = json.loads(recorded[_MUVERA_KEY]) if recorded.get(_MUVERA_KEY) else None
        rec_candidates = recorded.get(_CANDIDATES_KEY) or (None if not recorded else "summary")
        conflicts = []
        if (
            self._given_candidates is not None
            and rec_candidates is not None
            and self._given_candidates != rec_candidates
        ):
            conflicts.append(f"candidates_from={self._given_candidates!r}")
        if self._given_summary is not None and rec_summary is not None and self._given_summary != rec_summary:
            conflicts.append(f"summary={self._given_summary!r}")
        if self._given_storage is not None and rec_storage is not None and self._given_storage != rec_storage:
            conflicts.append(f"storage={self._given_storage!r}")
        if self._given_pool is not None and rec_pool is not None and self._given_pool != int(rec_pool):
            conflicts.append(f"pool_factor={self._given_pool}")
        if self._given_muvera and rec_muvera is not None:
            differ = {k: v for k, v in self._given_muvera.items() if rec_muvera.get(k) != v}
            if differ:
                conflicts.append(f"muvera={differ}")
        summary = cast(SummaryMethod, rec_summary or self._given_summary or "mean")
        storage = cast(StorageDtype, rec_storage or self._given_storage or "float16")
        pool = int(rec_pool) if rec_pool is not None else (self._given_pool or 1)
        muvera = (
            rec_muvera
            if rec_muvera is not None
            else (dict(self._given_muvera or {}) if summary == "muvera" else None)
        )
        candidates_from = cast(CandidateSource, rec_candidates or self._given_candidates or "summary")
        opts = _Options(summary, storage, pool, muvera, candidates_from)
        if conflicts:
            raise StoreMismatchError(
                f"store {self.location} was built with {opts.describe()}; refusing to open it with "
                f"{', '.join(conflicts)}. Leave those options out (the store's are used) or use a new "
                "--store folder."
            )
        return opts

    def _reconcile(self, tokens: TokenStore) -> ReconcileReport:
        with tokens.locked():
            record_ids = set(self._pages.ids())
            token_ids = set(tokens.ids())
            if record_ids and not token_ids:
                raise StoreError(
                    f"store {self.location} has {len(record_ids)} pages but its token folder "
                    f"{self._token_dir} holds none; pass the right `token_dir`, or re-index"
                )
            no_tokens = sorted(record_ids - token_ids)
            no_record = sorted(token_ids - record_ids)
            if no_tokens:
                self._pages.delete(no_tokens)
            if no_record:
                tokens.delete(no_record)
            compacted = self._maybe_compact(tokens)
            self._sync_index(tokens)
        report = ReconcileReport(tuple(no_tokens), tuple(no_record), compacted)
        if report.fixed:
            logger.warning(
                "store %s: reconciled after an interrupted write: deleted %d records without tokens, "
                "dropped tokens of %d pages without a record",
                self.location,
                len(no_tokens),
                len(no_record),
            )
        return report

    def _sync_index(self, tokens: TokenStore, changed: Sequence[str] = ()) -> None:
        """Bring the centroid index in line with the tokens (the token lock is held).

        The index is derived from the tokens: if this fails the pages stay written, the pages it did
        not code are scored exactly at search, and the next write or open completes it.
        """
        if self._index is None:
            return
        try:
            self._index.sync(tokens, changed)
        except (StoreError, OSError) as e:
            logger.warning(
                "store %s: updating the centroid index failed (%s); it is completed later", self.location, e
            )

    def _maybe_compact(self, tokens: TokenStore) -> int:
        stats = tokens.stats()
        if stats.file_bytes and stats.dead_fraction > _COMPACT_DEAD_FRACTION:
            return tokens.compact()
        return 0

    # -- embedder and summaries -------------------------------------------------------------------

    def _check_embedder(self, embedder: EmbedderInfo, action: str) -> None:
        """Refuse another embedder than the stored pages'; the recorded one is read once per open."""
        recorded = self._recorded
        if recorded is None:
            if self._pages.count() == 0:
                return
            recorded = self._recorded = _recorded_embedder(self._pages.metadata())
        if recorded is not None and recorded != embedder:
            if self._pages.count() == 0:  # emptied since: any embedder may write
                self._recorded = None
                return
            raise StoreMismatchError(
                f"store {self.location} was built with {recorded.describe()}; refusing to {action} with "
                f"{embedder.describe()}. Use a new --store folder or re-index with the original model."
            )

    def _muvera_for(self, dim: int) -> Muvera:
        opts = cast(_Options, self._options)
        if self._muvera is None or self._muvera.config().get("dim", dim) != dim:
            from pagesight.retrieval.muvera import Muvera

            settings = {k: v for k, v in (opts.muvera or {}).items() if k != "dim"}
            self._muvera = Muvera(dim, **settings)
            self._options = replace(opts, muvera=self._muvera.config())
        return self._muvera

    def _summary_info(self, embedder: EmbedderInfo) -> EmbedderInfo:
        """The embedder as the Chroma side records it: same model, the summary's dimension."""
        opts = cast(_Options, self._options)
        if opts.summary == "mean":
            dims = embedder.dimensions
        else:  # the FDE plus the coordinate that turns inner product into cosine
            dims = int(self._muvera_for(embedder.dimensions).fde_dim) + 1
        return EmbedderInfo(embedder.model, embedder.revision, dims, embedder.kind)

    def _record(self, embedder: EmbedderInfo) -> dict[str, str | int]:
        opts = cast(_Options, self._options)
        muvera = (
            json.dumps(self._muvera_for(embedder.dimensions).config(), sort_keys=True)
            if opts.summary == "muvera"
            else ""
        )
        return {
            _TOKEN_DIM_KEY: int(embedder.dimensions),
            _SUMMARY_KEY: opts.summary,
            _MUVERA_KEY: muvera,
            _STORAGE_KEY: opts.storage,
            _POOL_KEY: int(opts.pool_factor),
            _CANDIDATES_KEY: opts.candidates_from,
        }

    def _summarize_pages(self, matrices: list[np.ndarray], embedder: EmbedderInfo) -> np.ndarray:
        opts = cast(_Options, self._options)
        if opts.summary == "muvera":
            fde = self._muvera_for(embedder.dimensions)
            return _mips_to_cosine_documents(np.asarray(fde.encode_documents(matrices), np.float32), fde)
        from pagesight.retrieval.pooling import mean_summary

        return np.stack([mean_summary(m) for m in matrices]).astype(np.float32)

    def _summarize_query(self, query: np.ndarray, embedder: EmbedderInfo) -> np.ndarray:
        opts = cast(_Options, self._options)
        if opts.summary == "muvera":
            q = np.asarray(self._muvera_for(embedder.dimensions).encode_query(query), np.float32)
            norm = float(np.linalg.norm(q))
            return np.append(q / norm if norm > 0 else q, np.float32(0.0)).astype(np.float32)
        from pagesight.retrieval.pooling import mean_summary

        return np.asarray(mean_summary(query), np.float32)

    @staticmethod
    def _pool(matrices: list[np.ndarray], factor: int) -> list[np.ndarray]:
        if factor <= 1:
            return matrices
        from pagesight.retrieval.pooling import pool_tokens

        return [np.asarray(pool_tokens(m, factor), np.float32) for m in matrices]


# -- helpers ---------------------------------------------------------------------------------------


def _check_kind(embedder: EmbedderInfo) -> None:
    if embedder.kind != "late-interaction":
        raise ConfigurationError(
            f"MultiVectorStore takes a late-interaction embedder, got {embedder.describe()}; "
            "use PageStore for one vector per page"
        )


def _mips_to_cosine_documents(fde: np.ndarray, muvera: Muvera) -> np.ndarray:
    """Append one coordinate so that Chroma's cosine ranks pages by the FDE *inner product*.

    MUVERA's estimate of MaxSim is ``<query FDE, page FDE>``, but the collection is cosine (the
    page store's one space). With ``M`` >= every page FDE's norm, the page vector
    ``[x / M, sqrt(1 - |x|^2 / M^2)]`` has unit length and the query vector ``[q / |q|, 0]`` gives
    ``cos = <q, x> / (M |q|)``: the same order as the inner product (the classic reduction of maximum
    inner-product search to nearest-neighbour search). ``M`` is a bound that holds for any page of
    unit tokens: each block of a page FDE is a mean of projected unit tokens, so its norm is at most
    the projection's spectral norm; a page of longer tokens is scaled down to ``M``.
    """
    bound = _fde_norm_bound(muvera)
    norms = np.linalg.norm(fde, axis=1, keepdims=True)
    over = norms > bound
    if over.any():
        logger.debug(
            "%d page FDEs exceed the norm bound %.3f (tokens not unit length)", int(over.sum()), bound
        )
        fde = np.where(over, fde * (bound / np.maximum(norms, 1e-30)), fde)
    scaled = fde / bound
    extra = np.sqrt(np.clip(1.0 - (scaled**2).sum(axis=1), 0.0, None))
    return np.concatenate([scaled, extra[:, None]], axis=1).astype(np.float32)


def _fde_norm_bound(muvera: Muvera) -> float:
    """Largest norm a page FDE of unit tokens can have: sqrt(sum over reps of B * ||P_r||_2^2)."""
    proj = getattr(muvera, "_proj", "unknown")
    if isinstance(proj, str):  # an encoder that does not show its projections: ||P||_2 <= ||P||_F
        spectral = np.full(muvera.r_reps, np.sqrt(muvera.dim))
    elif proj is None:
        spectral = np.ones(muvera.r_reps)  # no projection (dim_proj == dim)
    else:
        spectral = np.array([np.linalg.norm(p.astype(np.float64), 2) for p in proj])
    return float(np.sqrt(muvera.n_buckets * (spectral**2).sum())) * (1.0 + 1e-6)


def _recorded_embedder(meta: dict[str, Any]) -> EmbedderInfo | None:
    try:
        return EmbedderInfo(
            model=str(meta["pagesight:model"]),
            revision=str(meta["pagesight:revision"]) or None,
            dimensions=int(meta[_TOKEN_DIM_KEY]),
            kind=as_kind(meta["pagesight:kind"]),
        )
    except KeyError:
        return None


def _top(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, best first (ties keep the earlier index)."""
    cut = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    return [int(i) for i in cut[np.lexsort((cut, -scores[cut]))]]

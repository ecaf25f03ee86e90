"""The page store: one Chroma record per page, page images as files beside it.

Install::

    pip install "pagesight[chroma]"

Use::

    from pagesight.retrieval.store import PageStore

    with PageStore("index/") as store:            # embedded Chroma in ./index (created if missing)
        store.add_source(pages, vectors, embedder=encoder.info)   # vectors: (len(pages), dims)
        hits = store.search(query_vector, k=5, embedder=encoder.info)
        hits[0].source, hits[0].page, hits[0].score, hits[0].image   # best page first

    PageStore(url="http://127.0.0.1:8000")          # or a Chroma server (``chroma run``)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from pagesight._deps import require
from pagesight.documents._common import is_storable_name
from pagesight.documents.page import Page
from pagesight.errors import (
    ConfigurationError,
    DamagedStoreError,
    InvalidVectorError,
    PagesightError,
    StoreAuthenticationError,
    StoreError,
    StoreMismatchError,
)
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval import _journal
from pagesight.retrieval._images import image_relpath, place_image, remove_image, resolve_stored_path
from pagesight.retrieval._writelock import WriteLock, pid_alive
from pagesight.retrieval.health import PageRef, StoreHealth

__all__ = ["Hit", "SourceInfo", "PageStore"]

logger = logging.getLogger(__name__)

_MODEL_KEY = "pagesight:model"
_REVISION_KEY = "pagesight:revision"
_DIMENSIONS_KEY = "pagesight:dimensions"
_KIND_KEY = "pagesight:kind"
_EMBEDDER_KEYS = (_MODEL_KEY, _REVISION_KEY, _DIMENSIONS_KEY, _KIND_KEY)


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored page, as search and listing return it.

    Attributes:
        id: the record's id (``Page.id``: content hash prefix and page number).
        source: the path or URL the page came from.
        page: 1-based page number.
        text: the page's text.
        image: the page image inside the store's image folder, or ``None``.
        width: image width in pixels (0 without an image).
        height: image height in pixels (0 without an image).
        content_hash: SHA-256 of the source's bytes when it was indexed.
        score: cosine similarity to the query for search results (higher is closer); 0.0 from
            :meth:`PageStore.get` and :meth:`PageStore.pages`.
        text_source: where the text came from: ``"layer"``, ``"ocr"`` or ``"both"`` (see
            :attr:`pagesight.documents.Page.text_source`).
    """

    id: str
    source: str
    page: int
    text: str
    image: Path | None
    width: int
    height: int
    content_hash: str
    score: float
    text_source: str = "layer"


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One indexed source.

    Attributes:
        source: the path or URL as it was indexed.
        pages: how many pages of it the store holds.
        content_hash: SHA-256 of the source's bytes when it was indexed.
    """

    source: str
    pages: int
    content_hash: str


# Chroma's HNSW defaults search with ef = max(10, k): measured on 20,000 page vectors (bench/.cache of
# bench/two_stage.py), the top 100 it returned held 94.2% of the exact top 100; with ef_search=200
# it held 99.0% at the same latency (0.8 ms per query). Candidate search needs that recall.
_SOURCE_PAGES = "source_pages"  # record metadata: pages the source was written with
_HNSW = {"space": "cosine", "ef_search": 200, "ef_construction": 200}


class PageStore:
    """Pages and their vectors in a Chroma collection (cosine space), page images as files.

    One record per page, with id ``Page.id`` (from the source's content hash and the page number),
    so indexing the same bytes again is an upsert. The collection's metadata records the embedder
    that wrote it; writing or searching with another one raises :class:`StoreMismatchError`.

    Page images move into the image folder under content-addressed names
    (``images/<hash[:2]>/<hash[:32]>-p<N>.png``): ``<path>/images`` for an embedded store.
    For a server store the images stay on this machine, by default in
    ``$XDG_CACHE_HOME/pagesight/images/<host>-<port>/<collection>`` (``~/.cache`` when
    ``XDG_CACHE_HOME`` is unset); pass ``image_dir`` to share them.

    The constructor neither imports Chroma nor connects; the first call that needs the collection
    does, once, under a lock. Writes from several threads of one process are serialized.

    Example:
        >>> store = PageStore("index/")                       # doctest: +SKIP
        >>> store.add_source(pages, vectors, embedder=info)   # doctest: +SKIP
        >>> [(h.source, h.page, round(h.score, 2)) for h in store.search(q, k=2, embedder=info)]
        [('report.pdf', 3, 0.82), ('report.pdf', 1, 0.61)]   # doctest: +SKIP

    Crash safety and several processes (embedded stores): the first write takes a lock
    (:class:`filelock.FileLock`, POSIX and Windows) on ``<path>/pagesight.lock`` and holds it
    until :meth:`close`, so a second process that writes
    the same folder gets :class:`StoreError` naming the holder's pid (after waiting
    ``lock_timeout`` seconds) instead of corrupting Chroma's index; readers need no lock. Every
    write first records in ``<path>/journal/`` what must be gone if it does not complete; opening
    the store replays what a crash (even SIGKILL) left there, so an interrupted ``add_source`` is
    rolled back and an interrupted delete completed, and removes half-copied images and the
    staging folders of dead ingest processes. A server store (``url``) has neither: the server
    serializes writers.

    Stored data is untrusted (a store copied from someone else, a shared server): every path read
    from the journal or a record's metadata is checked to lie inside the image folder
    (:func:`~pagesight.retrieval._images.resolve_stored_path`) and refused otherwise; a hit whose
    image is refused or missing has ``image=None`` (a missing one is logged once per page). Opening
    an embedded store whose database is empty while page images or token matrices show it held
    pages raises :class:`DamagedStoreError`; :meth:`check` reports every disagreement between
    database, image folder and journal, :meth:`repair` removes what no record uses.

    Attributes:
        max_batch_size: cap on records per Chroma call below the client's own
            ``get_max_batch_size()``; ``None`` (the default) uses the client's limit.
        lock_timeout: seconds a write waits for another process's write lock before raising
            :class:`StoreError` (default 10).
    """

    max_batch_size: int | None = None
    lock_timeout: float = 10.0

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        database: str | None = None,
        image_dir: str | Path | None = None,
        collection: str = "pagesight",
    ) -> None:
        """Describe a store; nothing is opened until it is used.

        Args:
            path: folder of an embedded Chroma database (created on first use if missing).
            url: ``http://host:port`` (or ``https://``) of a Chroma server. Give exactly one of
                ``path`` and ``url``. ``http://user:password@host:port`` sends HTTP Basic auth
                (the password is never shown in :attr:`location` or messages).
            headers: HTTP headers sent with every request to the server, e.g.
                ``{"Authorization": "Bearer TOKEN"}`` or ``{"X-Chroma-Token": "TOKEN"}`` (a server
                started with token auth, or a proxy in front of it). Chroma's own
                ``CHROMA_CLIENT_AUTH_PROVIDER``/``CHROMA_CLIENT_AUTH_CREDENTIALS`` settings and
                environment variables work too.
            tenant: the server's tenant (default: Chroma's ``default_tenant``).
            database: the tenant's database (default: Chroma's ``default_database``); create
                tenants and databases with ``chromadb.AdminClient``.
            image_dir: folder for page images (see the class docstring for the defaults; a
                server store keeps them per tenant and database).
            collection: the Chroma collection's name.

        Raises:
            ConfigurationError: neither or both of ``path`` and ``url``, a malformed ``url``,
                a malformed header, tenant or database name, or server options without ``url``.
        """
        if (path is None) == (url is None):
            raise ConfigurationError("give exactly one of `path` (a folder) or `url` (a Chroma server)")
        if url is None and (headers or tenant is not None or database is not None):
            raise ConfigurationError("`headers`, `tenant` and `database` apply to a Chroma server `url`")
        self._path = Path(path).expanduser() if path is not None else None
        self._url = url
        self._server: _Server | None = None
        if url is not None:
            self._server = _server_options(url, headers, tenant, database)
            self._url = self._server.url  # without a user:password part
        self._collection_name = collection
        if image_dir is not None:
            self._image_dir = Path(image_dir).expanduser()
        elif self._path is not None:
            self._image_dir = self._path / "images"
        else:
            assert self._server is not None  # set above whenever url is given
            self._image_dir = _cache_dir() / "images" / self._server.folder / collection
        self._lock = threading.RLock()
        self._client: Any = None
        self._collection: Any = None
        self._client_batch_limit: int | None = None
        self._write_lock = WriteLock(self._path, self.location) if self._path is not None else None
        self._writing = False  # whether this object holds the write lock
        self._warned_missing: set[str] = set()  # record ids whose missing image was warned about
        self._verified = False  # whether _verify passed for this connection
        self._suspend_checks = 0  # > 0 while check() or repair() reads a possibly damaged store
        self._refused: set[str] = set()  # stored paths refused (outside the store), for check()
        self._release: weakref.finalize[Any, Any] | None = None

    # -- public API ----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store's folder or server URL and collection, as error messages name it."""
        where = str(self._path) if self._path is not None else str(self._url)
        server = self._server
        if server is not None and (server.tenant is not None or server.database is not None):
            tenant, database = server.tenant or "default_tenant", server.database or "default_database"
            where += f" (tenant {tenant}, database {database})"
        if self._collection_name != "pagesight":
            where += f" (collection {self._collection_name})"
        return where

    @property
    def image_dir(self) -> Path:
        """The folder that holds the page images."""
        return self._image_dir

    @property
    def embedder(self) -> EmbedderInfo | None:
        """The embedder the stored pages were written with; ``None`` while the store is empty."""
        with self._lock:
            col, meta = self._current()
            with self._chroma("reading the collection"):
                if col.count() == 0:
                    return None
                return _decode_embedder(meta)

    def add_source(
        self,
        pages: Sequence[Page],
        embeddings: np.ndarray,
        *,
        embedder: EmbedderInfo,
        extra_metadata: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        """Write all pages of one source, or nothing.

        Everything is checked before anything is written. Page images are placed in the image
        folder, then records are upserted in batches the client accepts. If any step fails, the
        records this call created and the image files it created are removed again and the staging
        images stay where they were. On success the staging images are removed and pages of an
        older version of the same source (same ``source``, other ``content_hash``) are deleted with
        their images.

        Args:
            pages: the pages of one source, all with the same ``source`` and ``content_hash``.
            embeddings: float array of shape ``(len(pages), embedder.dimensions)``, all finite.
            embedder: the embedder that produced ``embeddings``.
            extra_metadata: more ``pagesight:*`` keys the collection records beside the embedder
                (what :class:`~pagesight.retrieval.multivector.MultiVectorStore` records of its
                summary vectors). Written on the first write to an empty store; afterwards they
                must equal what is recorded.

        Raises:
            InvalidVectorError: wrong shape or dtype, or a NaN/infinite value (names the page).
            StoreMismatchError: the store holds pages written with another embedder (or other
                ``extra_metadata``).
            ConfigurationError: an ``extra_metadata`` key that is not ``pagesight:*`` or a value
                that is not a str, int, float or bool.
            StoreError: inconsistent pages, a missing image file, or Chroma failed.
        """
        if not pages:
            return
        vectors = _check_pages_and_vectors(pages, embeddings, embedder)
        extra = _check_extra_metadata(extra_metadata)
        source, content_hash = pages[0].source, pages[0].content_hash
        with self._lock:
            self.lock_for_writing()
            col = self._prepare_write(embedder, extra)
            ids = [p.id for p in pages]
            existing = self._existing_ids(col, ids)
            placed: list[tuple[Path, Path, bool]] = []  # (staging file, store file, created)
            written: list[str] = []
            new = [p for p in pages if p.id not in existing]
            intent = self._intent(
                f"adding {source}",
                [p.id for p in new],
                [image_relpath(p.content_hash, p.page, Path(p.image).suffix) for p in new if p.image],
            )
            try:
                rels = self._place_images(pages, placed)
                metadatas = [_page_metadata(p, rel, len(pages)) for p, rel in zip(pages, rels, strict=True)]
                step = self._batch_size()
                for start in range(0, len(pages), step):
                    end = min(start + step, len(pages))
                    with self._chroma(f"writing pages {pages[start].page}-{pages[end - 1].page} of {source}"):
                        written.extend(ids[start:end])
                        col.upsert(
                            ids=ids[start:end],
                            embeddings=vectors[start:end],
                            documents=[p.text for p in pages[start:end]],
                            metadatas=metadatas[start:end],
                        )
            except BaseException:
                self._rollback(col, [i for i in written if i not in existing], placed)
                if intent is not None:
                    _journal.finish(intent)
                raise
            for staging, stored, _ in placed:
                if staging.resolve() != stored.resolve():
                    staging.unlink(missing_ok=True)
            removed = self._delete_where(col, source, keep_hash=content_hash, replace=intent)
        logger.info(
            "stored %d pages of %s in %s%s",
            len(pages),
            source,
            self.location,
            f" (replaced {removed} pages of an older version)" if removed else "",
        )

    def search(
        self,
        query_embedding: np.ndarray,
        k: int = 10,
        *,
        embedder: EmbedderInfo,
        source: str | None = None,
    ) -> list[Hit]:
        """Return the ``k`` pages closest to the query, best first.

        Args:
            query_embedding: one vector, shape ``(dims,)`` or ``(1, dims)``.
            k: how many pages to return at most.
            embedder: the embedder that produced ``query_embedding``.
            source: only search the pages of this source.

        Returns:
            Hits with ``score`` = cosine similarity, in descending order; ``[]`` for an empty store.

        Raises:
            StoreMismatchError: the store was written with another embedder.
            InvalidVectorError: wrong shape or a non-finite value.
        """
        if k < 1:
            raise ConfigurationError(f"`k` must be at least 1, got {k}")
        query = _check_query(query_embedding, embedder)
        if source is not None and not is_storable_name(source):
            return []  # never stored (see documents.source_name); Chroma would reject the filter
        with self._lock:
            col = self._open()
        with self._chroma("searching"):
            if col.count() == 0:
                return []
            recorded = _decode_embedder(col.metadata)
        if recorded != embedder:
            # This handle may have opened the collection before another one recorded its embedder.
            col, meta = self._current()
            recorded = _decode_embedder(meta)
        with self._chroma("searching"):
            self._check_embedder(recorded, embedder, "search")
            result = col.query(
                query_embeddings=query[None, :],
                n_results=k,
                where={"source": source} if source is not None else None,
                include=["documents", "metadatas", "distances"],
            )
        rows = zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
        # A record another process deleted while this one searched can come back from a vector index
        # loaded before the delete, without its metadata: it is no longer a page, so it is left out.
        hits = [
            self._hit(id_, doc, meta, 1.0 - float(dist), check=True)
            for id_, doc, meta, dist in rows
            if meta is not None
        ]
        hits.sort(key=lambda h: -h.score)
        return hits

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Return the stored pages with these ids, in the order given; unknown ids are skipped."""
        if not ids:
            return []
        with self._lock:
            col = self._open()
        found: dict[str, Hit] = {}
        unique = list(dict.fromkeys(ids))
        step = self._batch_size()
        for start in range(0, len(unique), step):
            with self._chroma("reading pages"):
                res = col.get(ids=unique[start : start + step], include=["documents", "metadatas"])
            for id_, doc, meta in zip(res["ids"], res["documents"], res["metadatas"], strict=True):
                found[id_] = self._hit(id_, doc, meta, 0.0, check=True)
        return [found[i] for i in ids if i in found]

    def pages(self, source: str | None = None) -> list[Hit]:
        """Return every stored page (or every page of ``source``), ordered by (source, page)."""
        hits = [
            self._hit(id_, doc, meta, 0.0)
            for id_, doc, meta in self._scan(source, include=["documents", "metadatas"])
        ]
        hits.sort(key=lambda h: (h.source, h.page))
        return hits

    def sources(self) -> list[SourceInfo]:
        """Return the indexed sources with their page counts, sorted by source."""
        counts: dict[str, Counter[str]] = {}
        for _, _, meta in self._scan(None, include=["metadatas"]):
            counts.setdefault(str(meta["source"]), Counter())[str(meta["content_hash"])] += 1
        infos = []
        for source in sorted(counts):
            by_hash = counts[source]
            infos.append(SourceInfo(source, sum(by_hash.values()), by_hash.most_common(1)[0][0]))
        return infos

    def source_hash(self, source: str) -> str | None:
        """Return the content hash stored for ``source``; ``None`` if it is not indexed completely.

        Ingest compares it with the file's current hash to skip unchanged sources (see
        :meth:`source_info`).
        """
        info = self.source_info(source)
        return info.content_hash if info is not None else None

    def source_info(self, source: str) -> SourceInfo | None:
        """Return ``source``'s pages and content hash; ``None`` if it is not indexed completely.

        A source whose write a crash cut short counts as not indexed: fewer pages than it was
        written with, or an old version beside the new one (possible on a server store, which has
        no journal). So does a source whose page image files are missing (deleted by hand, a lost
        image folder): ingest then writes it again, which restores them. Reads only that source's
        records (and checks that their image files exist).
        """
        hashes: Counter[str] = Counter()
        expected: dict[str, int] = {}
        no_image = 0
        for id_, _, meta in self._scan(source, include=["metadatas"]):
            digest = str(meta.get("content_hash", ""))
            hashes[digest] += 1
            if isinstance(meta.get(_SOURCE_PAGES), int):
                expected[digest] = int(meta[_SOURCE_PAGES])
            if meta.get("image"):
                image = self._stored_image(meta["image"], f"image of record {id_!r}")
                no_image += image is None or not image.is_file()
        if no_image:
            logger.warning(
                "%s: %d of its page images are missing from %s; it will be re-indexed",
                source,
                no_image,
                self._image_dir,
            )
            return None
        if len(hashes) != 1:
            if len(hashes) > 1:
                logger.warning(
                    "%s: two versions are stored (an interrupted update); it will be re-indexed", source
                )
            return None
        ((digest, count),) = hashes.items()
        if digest in expected and count != expected[digest]:
            logger.warning(
                "%s: %d of its %d pages are stored (an interrupted write); it will be re-indexed",
                source,
                count,
                expected[digest],
            )
            return None
        return SourceInfo(source, count, digest)

    def source_with_hash(self, content_hash: str) -> str | None:
        """Return a source whose stored pages have ``content_hash`` (the same bytes), or ``None``.

        Page ids derive from the content hash, so the same bytes under a second name would take the
        first name's pages over; ingest asks this first and keeps them under the first name.
        """
        with self._lock:
            col = self._open()
        with self._chroma("reading the store"):
            res = col.get(where={"content_hash": content_hash}, limit=1, include=["metadatas"])
        if not res["ids"]:
            return None
        return str(res["metadatas"][0]["source"])

    def delete_source(self, source: str) -> int:
        """Delete every page of ``source`` and its image files; return how many pages were removed."""
        with self._lock:
            self.lock_for_writing()
            col = self._open()
            removed = self._delete_where(col, source, keep_hash=None)
        if removed:
            logger.info("deleted %d pages of %s from %s", removed, source, self.location)
        return removed

    def recorded_kind(self) -> str | None:
        """The embedder kind the collection records, read without the damage check of opening.

        ``None`` when nothing is recorded or the database cannot be read (what ``pagesight check``
        uses to pick the store class for a store that may be damaged).
        """
        with self._lock:
            self._suspend_checks += 1
            try:
                _, meta = self._current()
            except DamagedStoreError:
                return None
            finally:
                self._suspend_checks -= 1
        kind = meta.get(_KIND_KEY)
        return str(kind) if kind else None

    def collection_id(self) -> str:
        """The Chroma collection's id (a new one when the database was replaced)."""
        col, _ = self._current()
        return str(col.id)

    def check(self) -> StoreHealth:
        """Compare the database, the image folder and the journal; report where they disagree.

        Changes nothing: the journal is not replayed and nothing is removed (see :meth:`repair`).
        Reads every record's metadata and lists the image folder.

        Returns:
            A :class:`~pagesight.retrieval.health.StoreHealth`; ``.ok`` is ``False`` when anything is
            missing or left over, ``.problems()`` lists it.

        Raises:
            StoreError: the store cannot be reached (a server that is down); a database that cannot
                be read is reported, not raised.
        """
        return self._check_records()[0]

    def repair(self) -> StoreHealth:
        """Finish interrupted writes (journal), remove abandoned staging folders and unused page images.

        Takes the write lock (kept until :meth:`close`). Records whose image file is missing stay:
        index their sources again (a plain re-index re-writes them). A database that cannot be read
        is not repaired.

        Returns:
            The health after the repair.

        Raises:
            StoreError: another process holds the write lock.
        """
        with self._lock:
            self._suspend_checks += 1
            try:
                self.lock_for_writing()
                self._recover()
                health = self.check()
                if not health.database_error:
                    for rel in health.orphan_images:
                        path = self._stored_image(rel, "unused image")
                        if path is not None:
                            remove_image(path, self._image_dir)
                    if health.orphan_images:
                        logger.warning(
                            "store %s: removed %d page images no record uses",
                            self.location,
                            len(health.orphan_images),
                        )
            finally:
                self._suspend_checks -= 1
            return self.check()

    def _check_records(self) -> tuple[StoreHealth, list[PageRef]]:
        """:meth:`check`, and every record as a :class:`PageRef` (what MultiVectorStore adds to)."""
        with self._lock:
            self._suspend_checks += 1
        try:
            writer = self._other_writer()
            records: list[PageRef] = []
            missing: list[PageRef] = []
            refused: list[str] = []
            referenced: set[str] = set()
            database_error = None
            try:
                for id_, _, meta in self._scan(None, include=["metadatas"]):
                    meta = meta or {}
                    page = meta.get("page")
                    ref = PageRef(str(id_), str(meta.get("source", "")), page if isinstance(page, int) else 0)
                    records.append(ref)
                    rel = meta.get("image") or ""
                    if not rel:
                        continue
                    path = resolve_stored_path(self._image_dir, rel, what=f"image of record {id_!r}")
                    if path is None:
                        refused.append(f"{ref.describe()}: {rel!r}")
                        continue
                    referenced.add(path.relative_to(self._image_dir).as_posix())
                    if not path.is_file():
                        missing.append(PageRef(ref.id, ref.source, ref.page, str(rel)))
            except DamagedStoreError as e:
                database_error = str(e.__cause__ or e)
                records = []
            files = list(self._image_files())
            journal: list[str] = []
            staging: list[str] = []
            if self._path is not None:
                jdir = self._path / _journal.JOURNAL_DIR
                if jdir.is_dir():
                    journal = sorted(p.name for p in jdir.iterdir() if p.suffix == ".json")
                staging = sorted(p.name for p in self._path.glob(".staging-*") if _staging_abandoned(p))
            health = StoreHealth(
                self.location,
                pages=len(records),
                image_files=len(files),
                database_error=database_error,
                records_without_image=tuple(missing),
                orphan_images=tuple(sorted(set(files) - referenced)),
                refused_paths=tuple(refused),
                leftover_journal=tuple(journal),
                leftover_staging=tuple(staging),
                writer_pid=None if writer is None else (writer if isinstance(writer, int) else 0),
            )
            return health, records
        finally:
            with self._lock:
                self._suspend_checks -= 1

    def metadata(self) -> dict[str, Any]:
        """Return the ``pagesight:*`` keys of the collection's metadata (embedder and extras)."""
        with self._lock:
            _, meta = self._current()
            return {k: v for k, v in meta.items() if k.startswith("pagesight:")}

    def ids(self) -> list[str]:
        """Return the ids of every stored page, sorted."""
        return sorted(id_ for id_, _, _ in self._scan(None, include=[]))

    def delete(self, ids: Sequence[str]) -> int:
        """Delete the pages with these ids and their image files; unknown ids are ignored.

        Returns:
            How many pages were removed.
        """
        if not ids:
            return 0
        with self._lock:
            self.lock_for_writing()
            col = self._open()
            doomed: list[tuple[str, dict[str, Any]]] = []
            unique = list(dict.fromkeys(ids))
            step = self._batch_size()
            for start in range(0, len(unique), step):
                with self._chroma("reading pages"):
                    res = col.get(ids=unique[start : start + step], include=["metadatas"])
                doomed.extend(zip(res["ids"], res["metadatas"] or [{}] * len(res["ids"]), strict=True))
            self._remove(col, doomed, "deleting pages", None)
        return len(doomed)

    def lock_for_writing(self) -> None:
        """Take this store's inter-process write lock now (writes take it themselves); kept until close.

        Embedded stores only; a no-op for a server store.

        Raises:
            StoreError: another process holds it for longer than ``lock_timeout`` (names its pid).
        """
        with self._lock:
            if self._writing or self._write_lock is None:
                return
            self._write_lock.acquire(self.lock_timeout)
            # A store dropped without close() gives its hold back when it is garbage-collected.
            self._release = weakref.finalize(self, self._write_lock.release)
            self._writing = True
            try:
                self._recover()
            except BaseException:
                self._writing = False
                self._release()
                raise

    @contextmanager
    def write_lock_if_free(self) -> Iterator[bool]:
        """Hold the write lock for a block if no other process holds it; yield whether it is held.

        What :class:`~pagesight.retrieval.multivector.MultiVectorStore` runs its repairs under when
        it opens: a store another process is writing is left to that process.
        """
        with self._lock:
            if self._writing or self._write_lock is None:
                yield True
                return
            if not self._write_lock.try_acquire():
                yield False
                return
            try:
                yield True
            finally:
                self._write_lock.release()

    def count(self) -> int:
        """Return the number of stored pages."""
        with self._lock:
            col = self._open()
        with self._chroma("counting pages"):
            return int(col.count())

    def close(self) -> None:
        """Release the Chroma client; the store reopens if it is used again."""
        with self._lock:
            client, self._client, self._collection = self._client, None, None
            self._client_batch_limit = None
            self._verified = False
            if self._writing and self._release is not None:
                self._release()  # runs the release once
            self._writing = False
        if client is not None:
            try:
                client.close()
            except Exception as e:  # closing must not hide the caller's own error
                logger.debug("closing the Chroma client of %s failed: %s", self.location, e)

    def __enter__(self) -> PageStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._path is not None:
            return f"PageStore({str(self._path)!r}, collection={self._collection_name!r})"
        return f"PageStore(url={self._url!r}, collection={self._collection_name!r})"

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> Any:
        """Return the collection, connecting and creating it on first use (caller holds the lock).

        An embedded store is verified once per connection (:meth:`_verify`): a damaged one raises
        :class:`DamagedStoreError` from every call until it is repaired.
        """
        if self._collection is not None and (self._verified or self._suspend_checks):
            return self._collection
        col = self._collection if self._collection is not None else self._connect()
        if not self._suspend_checks:
            self._verify(col)
            self._verified = True
        return col

    def _connect(self) -> Any:
        """Connect, create the collection if missing, and repair what a crash left (lock free)."""
        chromadb = require("chromadb", "chroma")
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        self._check_database_file()
        with self._damaged_database(), self._chroma("opening the store"):
            if self._path is not None:
                self._path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            else:
                assert self._server is not None
                client = self._server.client(chromadb, settings)
            self._client = client
            self._collection = self._get_or_create(client)
        lock = self._write_lock
        # A store another process is writing is left to that process to repair.
        if (
            lock is not None
            and not self._writing
            and not self._suspend_checks
            and self._leftovers()
            and lock.try_acquire()
        ):
            try:
                self._recover()
            finally:
                lock.release()
        return self._collection

    # -- crash recovery --------------------------------------------------------------------------

    def _check_database_file(self) -> None:
        """Refuse a ``chroma.sqlite3`` that is not an SQLite file before Chroma opens it.

        (Chroma cannot open a folder again in the same process after failing on it once.)
        """
        if self._path is None:
            return
        db = self._path / "chroma.sqlite3"
        try:
            with open(db, "rb") as f:
                header = f.read(16)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"store {self.location}: cannot read its database {db}: {e}") from e
        if header and header != b"SQLite format 3\x00":
            reason = "file is not a database: " + (
                "all zero bytes" if not header.strip(b"\0") else "no SQLite header"
            )
            raise DamagedStoreError(
                f"store {self.location} is damaged: its database {db} cannot be read ({reason}). "
                + StoreHealth(self.location, database_error=reason).advice(str(self._path))
            )

    @contextmanager
    def _damaged_database(self) -> Iterator[None]:
        """Turn "not a database" / "malformed" from opening an embedded store into DamagedStoreError."""
        try:
            yield
        except StoreError as e:
            text = str(e)
            corrupt = ("not a database", "malformed", "(code: 11)", "(code: 26)")
            if self._path is None or isinstance(e, DamagedStoreError) or not any(c in text for c in corrupt):
                raise
            raise DamagedStoreError(
                f"store {self.location} is damaged: its database {self._path / 'chroma.sqlite3'} cannot "
                f"be read ({e.__cause__ or e}). "
                + StoreHealth(self.location, database_error=text).advice(str(self._path))
            ) from e

    def _verify(self, col: Any) -> None:
        """Cheap agreement check of an embedded store on open: an empty database beside page images
        or token matrices written for another database is a lost database, not an empty store.

        Raises:
            DamagedStoreError: with what is missing and how to repair it.
        """
        if self._path is None:
            return
        with self._chroma("counting pages"):
            if col.count() > 0:
                return
        jdir = self._path / _journal.JOURNAL_DIR
        if jdir.is_dir() and any(p.suffix == ".json" for p in jdir.iterdir()):
            return  # a write in progress (another process) or to be repaired: not a lost database
        images = next(self._image_files(), None)
        tokens = _token_owner_mismatch(self._path / "tokens", str(col.id))
        if images is None and tokens is None:
            return
        what = (
            "the image folder holds page images"
            if images is not None
            else f"its token folder holds the token matrices of {tokens} pages written for another database"
        )
        lost = StoreHealth(self.location, orphan_images=(images or "tokens",))  # advice for a lost database
        raise DamagedStoreError(
            f"store {self.location} is damaged: its database holds no pages, but {what} (the database "
            f"was lost or replaced, e.g. an emptied or zeroed chroma.sqlite3). "
            f"Run `pagesight check --store {self._path}` for a report. " + lost.advice(str(self._path))
        )

    def _image_files(self) -> Iterator[str]:
        """Relative paths (``/``-separated) of the files in the image folder; links not followed."""
        root = self._image_dir
        if not root.is_dir():
            return
        for folder, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                if name.startswith(".") and name.endswith(".tmp"):
                    continue  # a copy killed before its rename: removed by recovery
                rel = (Path(folder) / name).relative_to(root).as_posix()
                yield rel

    def _leftovers(self) -> bool:
        """Whether a crash may have left something to repair (cheap: two folder listings)."""
        if self._path is None:
            return False
        jdir = self._path / _journal.JOURNAL_DIR
        if jdir.is_dir() and any(jdir.iterdir()):
            return True
        return any(self._path.glob(".staging-*"))

    def _recover(self) -> None:
        """Replay the journal and remove what dead writers left (caller holds the write lock)."""
        if self._path is None:
            return
        intents = _journal.pending(self._path)
        if intents:
            col = self._collection if self._collection is not None else self._open()
            for intent in intents:
                action = f"repairing an interrupted write ({intent.action})"
                self._delete_records(col, list(intent.ids), list(intent.images), action)
                _journal.finish(intent.path)
                logger.warning(
                    "store %s: finished an interrupted write (%s): removed %d records and their images",
                    self.location,
                    intent.action,
                    len(intent.ids),
                )
            for tmp in self._leftover_copies():  # a copy killed before its rename
                tmp.unlink(missing_ok=True)
        for staging in self._path.glob(".staging-*"):
            checked = resolve_stored_path(self._path, staging.name, what="staging folder")
            if checked is not None and not checked.is_symlink() and _staging_abandoned(checked):
                shutil.rmtree(checked, ignore_errors=True)

    def _leftover_copies(self) -> list[Path]:
        """Half-copied images (``<prefix>/.<name>.tmp``) inside the image folder, links not followed."""
        if not self._image_dir.is_dir():
            return []
        found = []
        for tmp in self._image_dir.glob("*/.*.tmp"):
            rel = tmp.relative_to(self._image_dir).as_posix()
            checked = resolve_stored_path(self._image_dir, rel, what="leftover image copy")
            if checked is not None:
                found.append(checked)
        return found

    def _intent(
        self, action: str, ids: list[str], images: list[str], replace: Path | None = None
    ) -> Path | None:
        """Journal what must be gone if this write does not complete (embedded stores only)."""
        if self._path is None:
            return None
        if not ids and not images:
            if replace is not None:
                _journal.finish(replace)
            return None
        try:
            return _journal.record(self._path, action, ids, images, replace=replace)
        except OSError as e:
            raise StoreError(f"store {self.location}: could not write its journal: {e}") from e

    def _current(self) -> tuple[Any, dict[str, Any]]:
        """The collection and its metadata as they are now.

        A handle caches the collection when it opens; another handle, process or server client may
        have recorded the embedder (or replaced the collection) since.
        """
        with self._lock:
            col = self._open()
            with self._chroma("reading the collection"):
                fresh = self._get_or_create(self._client)
            if fresh.id != col.id:  # deleted and created again by another handle
                self._collection = col = fresh
            return col, dict(fresh.metadata or {})

    def _get_or_create(self, client: Any) -> Any:
        col = client.get_or_create_collection(
            self._collection_name, configuration={"hnsw": dict(_HNSW)}, embedding_function=None
        )
        space = ((col.configuration or {}).get("hnsw") or {}).get("space")
        if space not in (None, "cosine"):
            raise StoreError(
                f"collection {self._collection_name!r} in {self.location} uses {space!r} distance; "
                "pagesight needs cosine. Use another collection name."
            )
        return col

    def _prepare_write(self, embedder: EmbedderInfo, extra: dict[str, Any] | None = None) -> Any:
        """Check ``embedder`` (and ``extra`` keys) against the store; record them if it is empty."""
        extra = extra or {}
        col, current = self._current()
        with self._chroma("reading the collection"):
            count = col.count()
            recorded = _decode_embedder(current)
            recorded_extra = {k: current.get(k) for k in extra}
            if count > 0:
                if recorded is None:
                    raise StoreError(
                        f"collection {self._collection_name!r} in {self.location} holds {count} records "
                        "that pagesight did not write. Use another collection name or --store folder."
                    )
                self._check_embedder(recorded, embedder, "write")
                if recorded_extra != extra:
                    raise StoreMismatchError(
                        f"store {self.location} records {recorded_extra}; refusing to write with {extra}. "
                        "Use a new --store folder or the original settings."
                    )
                return col
            if recorded == embedder and recorded_extra == extra:
                return col
            if recorded is not None and recorded != embedder:
                # Empty but fixed to another embedder (Chroma keeps a collection's dimension after the
                # last record is deleted): start afresh.
                self._client.delete_collection(self._collection_name)
                col = self._collection = self._get_or_create(self._client)
                current = dict(col.metadata or {})
            meta = {
                k: v
                for k, v in current.items()
                if not k.startswith("hnsw:") and not (extra and k.startswith("pagesight:"))
            }
            col.modify(metadata={**meta, **_encode_embedder(embedder), **extra})
        return col

    def _check_embedder(self, recorded: EmbedderInfo | None, given: EmbedderInfo, action: str) -> None:
        if recorded is not None and recorded != given:
            raise StoreMismatchError(
                f"store {self.location} was built with {recorded.describe()}; refusing to {action} with "
                f"{given.describe()}. Use a new --store folder or re-index with the original model."
            )

    # -- writing helpers -------------------------------------------------------------------------

    def _batch_size(self) -> int:
        """Records per Chroma call: the client's limit (asked once), capped by ``max_batch_size``."""
        with self._lock:
            self._open()
            if self._client_batch_limit is None:
                with self._chroma("reading the batch size"):
                    self._client_batch_limit = int(self._client.get_max_batch_size())
            limit = self._client_batch_limit
        if self.max_batch_size is not None:
            limit = min(limit, self.max_batch_size)
        return max(1, limit)

    def _existing_ids(self, col: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        step = self._batch_size()
        for start in range(0, len(ids), step):
            with self._chroma("reading existing pages"):
                found.update(col.get(ids=ids[start : start + step], include=[])["ids"])
        return found

    def _place_images(self, pages: Sequence[Page], placed: list[tuple[Path, Path, bool]]) -> list[str]:
        """Put each page's image in the store; append what was placed to ``placed`` as it goes."""
        rels: list[str] = []
        for p in pages:
            if p.image is None:
                rels.append("")
                continue
            rel = image_relpath(p.content_hash, p.page, Path(p.image).suffix)
            dst = resolve_stored_path(self._image_dir, rel, what="page image name")
            if dst is None:
                raise StoreError(
                    f"{p.source} (page {p.page}): its image name {rel!r} (from content_hash "
                    f"{p.content_hash!r}) would leave the image folder {self._image_dir}"
                )
            src = Path(p.image)
            if src.resolve() == dst.resolve():
                placed.append((src, dst, False))
            else:
                try:
                    placed.append((src, dst, place_image(src, dst)))
                except OSError as e:
                    raise StoreError(
                        f"{p.source} (page {p.page}): could not copy its image {src} "
                        f"into {self._image_dir}: {e}"
                    ) from e
            words = src.with_name(src.stem + ".words.json")  # OCR word boxes (documents.ocr.words_path)
            if words.is_file() and words.resolve() != dst.with_name(dst.stem + ".words.json").resolve():
                try:
                    place_image(words, dst.with_name(dst.stem + ".words.json"))
                except OSError as e:  # the boxes only serve heatmaps: the page is still written
                    logger.info("could not copy the OCR word boxes %s: %s", words, e)
            rels.append(rel)
        return rels

    def _rollback(self, col: Any, new_ids: list[str], placed: list[tuple[Path, Path, bool]]) -> None:
        step = self._batch_size_or(len(new_ids))
        for start in range(0, len(new_ids), step):
            try:
                col.delete(ids=new_ids[start : start + step])
            except Exception as e:
                logger.error("rollback in %s could not delete %d records: %s", self.location, len(new_ids), e)
        for _, stored, created in placed:
            if created:
                remove_image(stored)
        logger.warning(
            "write to %s failed; rolled back %d new records and %d new images",
            self.location,
            len(new_ids),
            sum(created for _, _, created in placed),
        )

    def _batch_size_or(self, fallback: int) -> int:
        try:
            return self._batch_size()
        except PagesightError:
            return max(1, fallback)

    def _delete_where(
        self, col: Any, source: str, *, keep_hash: str | None, replace: Path | None = None
    ) -> int:
        """Delete pages of ``source`` (except those with ``keep_hash``) and their images.

        ``replace``: the journal file of the write this delete completes (swapped for the delete's).
        """
        doomed = [
            (id_, meta)
            for id_, _, meta in self._scan(source, include=["metadatas"])
            if keep_hash is None or meta.get("content_hash") != keep_hash
        ]
        self._remove(col, doomed, f"deleting pages of {source}", replace)
        return len(doomed)

    def _remove(
        self, col: Any, doomed: list[tuple[str, dict[str, Any]]], action: str, replace: Path | None
    ) -> None:
        """Journal, then delete records, then their images; then close the journal entry."""
        ids = [id_ for id_, _ in doomed]
        images = [
            str(meta["image"])
            for id_, meta in doomed
            if meta and meta.get("image") and self._stored_image(meta["image"], f"image of record {id_!r}")
        ]
        intent = self._intent(action, ids, images, replace=replace)
        self._delete_records(col, ids, images, action)
        if intent is not None:
            _journal.finish(intent)

    def _delete_records(self, col: Any, ids: list[str], images: list[str], action: str) -> None:
        """Delete records in batches the client accepts, then their image files (both idempotent)."""
        step = self._batch_size()
        for start in range(0, len(ids), step):
            with self._chroma(action):
                col.delete(ids=ids[start : start + step])
        for rel in images:
            path = self._stored_image(rel, "image to delete")
            if path is not None:
                remove_image(path, self._image_dir)

    # -- reading helpers -------------------------------------------------------------------------

    def _scan(self, source: str | None, *, include: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Yield (id, document, metadata) of every record (of ``source``), a batch at a time."""
        if source is not None and not is_storable_name(source):
            return  # never stored: documents.source_name refuses names that are not valid UTF-8
        with self._lock:
            col = self._open()
        step = self._batch_size()
        offset = 0
        while True:
            with self._chroma("listing pages"):
                res = col.get(
                    where={"source": source} if source is not None else None,
                    limit=step,
                    offset=offset,
                    include=include,
                )
            ids = res["ids"]
            docs = res.get("documents") or [""] * len(ids)
            metas = res.get("metadatas") or [{}] * len(ids)
            yield from zip(ids, docs, metas, strict=True)
            if len(ids) < step:
                return
            offset += step

    def _hit(
        self, id_: str, doc: str | None, meta: dict[str, Any] | None, score: float, *, check: bool = False
    ) -> Hit:
        """A record as a :class:`Hit`; its image path is checked to lie inside the image folder.

        ``check``: also check that the image file exists (search results); a missing one is warned
        about once per page and given as ``image=None``.
        """
        meta = meta or {}
        rel = meta.get("image") or ""
        image = self._stored_image(rel, f"image of record {id_!r}") if rel else None
        if image is not None and check and not image.is_file():
            if id_ not in self._warned_missing:
                self._warned_missing.add(id_)
                logger.warning(
                    "store %s: the image of %s page %s (%s) is missing; run `pagesight index` on that "
                    "source again to restore it (`pagesight check --store %s` lists every problem)",
                    self.location,
                    meta.get("source", "?"),
                    meta.get("page", "?"),
                    image,
                    self.location,
                )
            image = None
        return Hit(
            id=id_,
            source=str(meta.get("source", "")),
            page=_meta_int(meta, "page"),
            text=doc or "",
            image=image,
            width=_meta_int(meta, "width"),
            height=_meta_int(meta, "height"),
            content_hash=str(meta.get("content_hash", "")),
            score=score,
            text_source=str(meta.get("text_source", "layer")),
        )

    def _stored_image(self, rel: object, what: str) -> Path | None:
        """The image file a stored relative path names, or ``None`` if it would leave the image folder."""
        path = resolve_stored_path(self._image_dir, rel, what=f"{what} in store {self.location}")
        if path is None:
            self._refused.add(repr(rel))
        return path

    @contextmanager
    def _chroma(self, action: str) -> Iterator[None]:
        """Turn Chroma's and the transport's exceptions into :class:`StoreError`."""
        try:
            yield
        except PagesightError:
            raise
        except Exception as e:
            if not _is_backend_error(e):
                raise
            status = _auth_status(e)
            if status is not None:
                raise StoreAuthenticationError(
                    f"store {self.location}: {action} failed: authentication failed (HTTP {status}); the "
                    "server wants credentials: pass --chroma-header 'Authorization: Bearer TOKEN' (or "
                    "X-Chroma-Token, as the server expects), $PAGESIGHT_CHROMA_HEADERS, or headers= in Python"
                ) from e
            writer = self._other_writer()
            if writer is not None:
                # Chroma's embedded mode keeps each process's vector index in memory and flushes it
                # now and then: another process reading mid-write can find it incomplete on disk.
                raise StoreError(
                    f"store {self.location}: {action} failed while another process (pid {writer}) is "
                    "writing the store; an embedded store's index is not shared between processes. Try "
                    "again when it is done, or use a Chroma server (`chroma run`, then --store "
                    f"http://HOST:PORT) to read while writing ({type(e).__name__}: {e})"
                ) from e
            raise StoreError(f"store {self.location}: {action} failed: {type(e).__name__}: {e}") from e

    def _other_writer(self) -> int | str | None:
        """The pid (or ``"unknown"``) of another process holding the write lock; ``None`` if none does."""
        lock = self._write_lock
        if lock is None or self._writing:
            return None
        try:
            if lock.try_acquire():
                lock.release()
                return None
        except (OSError, StoreError):  # an unusable lock file: reported by the write that needs it
            return None
        return lock.holder_pid() or "unknown"


# -- module helpers --------------------------------------------------------------------------------


def _is_backend_error(e: Exception) -> bool:
    """Whether ``e`` comes from Chroma, its Rust bindings, its HTTP transport or the filesystem."""
    module = type(e).__module__ or ""
    if module.startswith(("chromadb", "httpx", "httpcore")):
        return True
    if _auth_status(e) is not None or type(e.__context__).__module__.startswith("httpx"):
        return True  # chromadb's bare Exception(response text) for an HTTP error it cannot parse
    # The Rust bindings and client-side validation raise builtins (ValueError, TypeError,
    # UnicodeEncodeError); sqlite and the network raise OSError subclasses.
    return isinstance(e, ValueError | TypeError | OSError)


def _check_extra_metadata(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keys ``pagesight:*``, values str/int/float/bool: what Chroma's collection metadata holds.

    Checked here because Chroma's Rust core panics (a ``BaseException``) on a list value.
    """
    checked: dict[str, Any] = {}
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key.startswith("pagesight:"):
            raise ConfigurationError(
                f"extra_metadata key {key!r} must be a string starting with 'pagesight:'"
            )
        if not isinstance(value, str | int | float | bool) or (
            isinstance(value, float) and not np.isfinite(value)
        ):
            raise ConfigurationError(
                f"extra_metadata[{key!r}] is {value!r} ({type(value).__name__}); "
                "collection metadata holds only str, int, float (finite) or bool values"
            )
        checked[key] = value
    return checked


def _meta_int(meta: Mapping[str, Any], key: str) -> int:
    """An integer field of record metadata; 0 when missing or not a number (a hostile record)."""
    value = meta.get(key, 0)
    return int(value) if isinstance(value, int | float) and np.isfinite(value) else 0


def _token_owner_mismatch(folder: Path, collection_id: str) -> int | None:
    """How many pages' tokens ``folder`` holds for another collection than ``collection_id``; else None.

    Tokens of an interrupted first write belong to this collection (MultiVectorStore records the
    owner before it writes them), so only tokens of a database that is gone count.
    """
    if not (folder / "index.sqlite3").is_file():
        return None
    from pagesight.retrieval.token_store import inspect_token_folder

    report = inspect_token_folder(folder)
    if report.error is None and report.ids and report.owner is not None and report.owner != collection_id:
        return len(report.ids)
    return None


def _staging_abandoned(folder: Path) -> bool:
    """Whether an ingest staging folder (``.staging-<pid>-*``) belongs to a process that is gone."""
    parts = folder.name.split("-")
    if len(parts) >= 3 and parts[1].isdigit():
        return not pid_alive(int(parts[1]))
    try:  # an older name without the pid: abandoned once a day old
        return time.time() - folder.stat().st_mtime > 86400
    except OSError:
        return False


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # tenant and database names (also folders)


@dataclass(frozen=True)
class _Server:
    """Where a server store connects and with what; ``repr`` never shows header values."""

    url: str  # without userinfo: safe to show
    host: str
    port: int
    ssl: bool
    headers: Mapping[str, str] = field(repr=False)
    tenant: str | None
    database: str | None

    @property
    def folder(self) -> str:
        """Relative folder of this server's local images and tokens (per tenant and database)."""
        base = f"{self.host}-{self.port}"
        if self.tenant is None and self.database is None:
            return base  # the folder stores had before tenants and databases were options
        return f"{base}/{self.tenant or 'default_tenant'}/{self.database or 'default_database'}"

    def client(self, chromadb: Any, settings: Any) -> Any:
        """A ``chromadb.HttpClient`` for this server."""
        from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT

        return chromadb.HttpClient(
            host=self.host,
            port=self.port,
            ssl=self.ssl,
            headers=dict(self.headers) or None,
            settings=settings,
            tenant=self.tenant or DEFAULT_TENANT,
            database=self.database or DEFAULT_DATABASE,
        )


def _server_options(
    url: str, headers: Mapping[str, str] | None, tenant: str | None, database: str | None
) -> _Server:
    """Check a server store's URL, headers, tenant and database (raising ConfigurationError)."""
    host, port, ssl = _parse_url(url)
    parts = urlsplit(url)
    sent: dict[str, str] = {}
    if parts.username is not None or parts.password is not None:
        import base64

        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        sent["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        url = shown.geturl()
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(f"`headers`: {name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            # the value is a secret: name the header, never show the value
            raise ConfigurationError(f"`headers`: the value of {name} must be a one-line string")
        sent = {k: v for k, v in sent.items() if k.lower() != name.lower()}
        sent[name] = value
    for what, name_given in (("tenant", tenant), ("database", database)):
        if name_given is not None and not (isinstance(name_given, str) and _NAME.fullmatch(name_given)):
            raise ConfigurationError(
                f"`{what}` must be 1-128 letters, digits, '_', '.' or '-' (not starting with one of "
                f"the last three), got {name_given!r}"
            )
    return _Server(url, host, port, ssl, sent, tenant, database)


def _auth_status(e: BaseException) -> int | None:
    """The HTTP status (401, 403, 407) when ``e`` says the server refused the credentials."""
    name = type(e).__name__
    if type(e).__module__.startswith("chromadb") and name in ("AuthorizationError", "ChromaAuthError"):
        return 401 if name == "AuthorizationError" else 403
    # chromadb raises a bare Exception(response text) for an HTTP error it cannot parse (a proxy's
    # 401 page) inside the handler of httpx's HTTPStatusError, and may re-raise that as a
    # ValueError: the status is down the exception's context chain.
    cause: BaseException | None = e
    for _ in range(5):
        if cause is None:
            break
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if type(cause).__name__ == "HTTPStatusError" and status in (401, 403, 407):
            return int(status)
        cause = cause.__cause__ or cause.__context__
    return None


def _parse_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no password in messages
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"`url` must look like http://host:port, got {shown!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(f"`url` has an invalid port: {shown!r}") from e
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else 8000), ssl


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "pagesight"


def _encode_embedder(info: EmbedderInfo) -> dict[str, str | int]:
    # Chroma metadata cannot hold None: a missing revision is stored as "".
    return {
        _MODEL_KEY: info.model,
        _REVISION_KEY: info.revision or "",
        _DIMENSIONS_KEY: int(info.dimensions),
        _KIND_KEY: info.kind,
    }


def _decode_embedder(meta: dict[str, Any] | None) -> EmbedderInfo | None:
    if not meta or any(k not in meta for k in _EMBEDDER_KEYS):
        return None
    return EmbedderInfo(
        model=str(meta[_MODEL_KEY]),
        revision=str(meta[_REVISION_KEY]) or None,
        dimensions=int(meta[_DIMENSIONS_KEY]),
        kind=str(meta[_KIND_KEY]),
    )


def _page_metadata(page: Page, image_rel: str, source_pages: int) -> dict[str, str | int]:
    return {
        "source": page.source,
        "page": int(page.page),
        "image": image_rel,
        "width": int(page.width),
        "height": int(page.height),
        "content_hash": page.content_hash,
        # How many pages the source was written with: a write a crash cut short (a server store has
        # no journal) is then seen as incomplete, and ingest writes the source again.
        _SOURCE_PAGES: int(source_pages),
        "text_source": str(getattr(page, "text_source", "layer")),  # layer / ocr / both
    }


def _check_pages_and_vectors(
    pages: Sequence[Page], embeddings: np.ndarray, embedder: EmbedderInfo
) -> np.ndarray:
    """Validate one source's pages and vectors; return the vectors as float32."""
    source, content_hash = pages[0].source, pages[0].content_hash
    seen: set[int] = set()
    for p in pages:
        if p.source != source:
            raise StoreError(
                f"add_source takes the pages of one source; got {source!r} and {p.source!r} in one call"
            )
        if p.content_hash != content_hash:
            raise StoreError(f"{source}: pages carry different content hashes; index one version at a time")
        if not content_hash:
            raise StoreError(f"{source} (page {p.page}): empty content_hash")
        if p.page < 1 or p.page in seen:
            raise StoreError(
                f"{source}: page number {p.page} is {'repeated' if p.page in seen else 'below 1'}"
            )
        seen.add(p.page)
        if p.image is not None and not Path(p.image).is_file():
            raise StoreError(f"{source} (page {p.page}): image file {p.image} does not exist")
    arr = np.asarray(embeddings)
    expected = (len(pages), embedder.dimensions)
    if arr.shape != expected:
        raise InvalidVectorError(
            f"{source}: embeddings must have shape {expected} ({len(pages)} pages, "
            f"{embedder.describe()}), got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidVectorError(f"{source}: embeddings must be floats, got dtype {arr.dtype}")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = pages[int(np.argmin(finite))]
        raise InvalidVectorError(
            f"{source} (page {bad.page}): embedding holds NaN or infinity; nothing was written"
        )
    return arr.astype(np.float32, copy=False)


def _check_query(query_embedding: np.ndarray, embedder: EmbedderInfo) -> np.ndarray:
    q = np.asarray(query_embedding)
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.shape != (embedder.dimensions,):
        raise InvalidVectorError(
            f"query embedding must have shape ({embedder.dimensions},) for {embedder.describe()}, "
            f"got {np.asarray(query_embedding).shape}"
        )
    if not np.issubdtype(q.dtype, np.floating):
        raise InvalidVectorError(f"query embedding must be floats, got dtype {q.dtype}")
    if not np.isfinite(q).all():
        raise InvalidVectorError("query embedding holds NaN or infinity")
    return q.astype(np.float32, copy=False)

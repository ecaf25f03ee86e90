"""The page policy: one record per page in a backend, page images as files beside it.

Install::

    pip install "pagesight[chroma]"

Use::

    from pagesight.retrieval.store import PageStore

    with PageStore("index/") as store:            # embedded Chroma in ./index (created if missing)
        store.add_source(pages, vectors, embedder=encoder.info)   # vectors: (len(pages), dims)
        hits = store.search(query_vector, k=5, embedder=encoder.info)
        hits[0].source, hits[0].page, hits[0].score, hits[0].image   # best page first

    PageStore(url="http://127.0.0.1:8000")          # or a Chroma server (``chroma run``)
    PageStore(backend=ChromaBackend("index/"))      # or any StoreBackend (see store.base)

Everything here is backend-free: record ids, page images (placed and removed through
:mod:`._images`), the journal, the write lock, the embedder record and source versions. The backend
(:mod:`.chroma` by default) holds the records.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from pagesight._checks import check_int
from pagesight.documents._common import is_storable_name
from pagesight.errors import (
    ConfigurationError,
    DamagedStoreError,
    InvalidVectorError,
    PagesightError,
    StoreError,
    StoreMismatchError,
)
from pagesight.retrieval.store import _journal
from pagesight.retrieval.store._bm25 import StoreBM25
from pagesight.retrieval.store._images import (
    image_relpath,
    place_image,
    remove_image,
    resolve_stored_path,
    words_name,
)
from pagesight.retrieval.store._remote_images import ImageMirror, is_url
from pagesight.retrieval.store._writelock import WriteLock, pid_alive
from pagesight.retrieval.store.base import Row, StoreBackend
from pagesight.retrieval.store.health import PageRef, StoreHealth
from pagesight.types import EmbedderInfo, Hit, Page, SourceInfo, as_kind, as_page_label, as_text_source

if TYPE_CHECKING:
    from pagesight.retrieval.bm25 import SegmentedBM25

__all__ = ["Hit", "SourceInfo", "PageStore", "check_pages"]

logger = logging.getLogger(__name__)

_MODEL_KEY = "pagesight:model"
_REVISION_KEY = "pagesight:revision"
_DIMENSIONS_KEY = "pagesight:dimensions"
_KIND_KEY = "pagesight:kind"
_EMBEDDER_KEYS = (_MODEL_KEY, _REVISION_KEY, _DIMENSIONS_KEY, _KIND_KEY)
_SOURCE_PAGES = "source_pages"  # record metadata: pages the source was written with


class PageStore:
    """Pages and their vectors in a backend collection (cosine space), page images as files.

    One record per page, with id ``Page.id`` (from the source's content hash and the page number),
    so indexing the same bytes again is an upsert. The collection's metadata records the embedder
    that wrote it; writing or searching with another one raises :class:`StoreMismatchError`.

    Page images move into the image folder under content-addressed names
    (``images/<hash[:2]>/<hash[:32]>-p<N>.png``): ``<path>/images`` for an embedded store.
    For a server store the images stay on this machine, by default in
    ``$XDG_CACHE_HOME/pagesight/images/<host>-<port>/<collection>`` (``~/.cache`` when
    ``XDG_CACHE_HOME`` is unset); pass ``image_dir``, or set ``$PAGESIGHT_IMAGE_DIR`` to a folder
    every machine mounts, to share them. ``image_dir`` (or ``$PAGESIGHT_IMAGE_DIR``) may also be an
    fsspec URL (``s3://bucket/pages``): every image is then written there before its record and
    deleted there with it, and the local image folder becomes this machine's cache, filled from the
    URL as hits need images (see :mod:`pagesight.retrieval.store._remote_images`).

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
    (:func:`~pagesight.retrieval.store._images.resolve_stored_path`) and refused otherwise; a hit whose
    image is refused or missing has ``image=None`` (a missing one is logged once per page). Opening
    an embedded store whose database is empty while page images or token matrices show it held
    pages raises :class:`DamagedStoreError`; :meth:`check` reports every disagreement between
    database, image folder and journal, :meth:`repair` removes what no record uses.

    Attributes:
        max_batch_size: cap on records per backend call below the backend's own limit (Chroma's
            ``get_max_batch_size()``); ``None`` (the default) uses the backend's limit.
        lock_timeout: seconds a write waits for another process's write lock before raising
            :class:`StoreError` (default 10).
        multivector: ``False``: one vector per page (``True`` on
            :class:`~pagesight.retrieval.store.MultiVectorStore`).
    """

    max_batch_size: int | None = None
    lock_timeout: float = 10.0
    multivector = False

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
        backend: StoreBackend | None = None,
        client_settings: Any = None,
        image_storage_options: Mapping[str, Any] | None = None,
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
                server store keeps them per tenant and database), or an fsspec URL every machine
                reaches (``s3://bucket/pages``; the local cache is then the default folder).
            collection: the Chroma collection's name.
            backend: the records' backend instead of a Chroma one built from the arguments above
                (give only ``image_dir`` with it); see
                :func:`~pagesight.retrieval.store.open_store` for opening one by URL scheme.
            client_settings: ``chromadb.config.Settings`` for the Chroma client (by default those of
                a Chroma client this process already has on the folder, so a stock
                ``langchain_chroma.Chroma`` and a store share one folder in one process; see
                :class:`~pagesight.retrieval.store.ChromaBackend`).
            image_storage_options: keyword arguments for the fsspec filesystem of an image URL
                (``{"endpoint_url": "http://minio:9000"}``); credentials may also come from the
                filesystem's usual environment variables.

        Raises:
            ConfigurationError: neither or both of ``path`` and ``url``, a malformed ``url``,
                a malformed header, tenant or database name, or server options without ``url``.
        """
        chroma_args = (path, url, tenant, database)
        if backend is None:
            from pagesight.retrieval.store.chroma import ChromaBackend

            backend = ChromaBackend(
                path,
                url=url,
                headers=headers,
                tenant=tenant,
                database=database,
                collection=collection,
                client_settings=client_settings,
            )
        elif (
            headers
            or collection != "pagesight"
            or client_settings is not None
            or any(a is not None for a in chroma_args)
        ):
            raise ConfigurationError("give either `backend` or the Chroma arguments (`path`, `url`, ...)")
        self._backend: StoreBackend = backend
        self._path = backend.folder  # local folder: journal, write lock, staging folders
        image_url = None
        if image_dir is not None and is_url(image_dir):
            image_url, image_dir = str(image_dir), None
        elif image_dir is None and backend.folder is None:
            from pagesight.retrieval.store.chroma import shared_image_url

            image_url = shared_image_url(backend.local_dir("images"))
        self._image_dir = (
            Path(image_dir).expanduser() if image_dir is not None else backend.local_dir("images")
        )
        self._mirror = ImageMirror(image_url, image_storage_options) if image_url else None
        self._warned_fetch: set[str] = set()  # images whose fetch from the URL failed, warned once
        self._lock = threading.RLock()
        self._write_lock = WriteLock(self._path, self.location) if self._path is not None else None
        self._writing = False  # whether this object holds the write lock
        self._warned_missing: set[str] = set()  # record ids whose missing image was warned about
        self._verified = False  # whether _verify passed for this connection
        self._suspend_checks = 0  # > 0 while check() or repair() reads a possibly damaged store
        self._refused: set[str] = set()  # stored paths refused (outside the store), for check()
        self._release: weakref.finalize[Any, Any] | None = None
        self._bm25 = StoreBM25(self)  # opens nothing

    # -- public API ----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store's folder or server URL and collection, as error messages name it."""
        return self._backend.location

    @property
    def backend(self) -> StoreBackend:
        """The backend that holds the records."""
        return self._backend

    @property
    def image_dir(self) -> Path:
        """The folder that holds the page images (this machine's cache of them with an image URL)."""
        return self._image_dir

    @property
    def image_url(self) -> str | None:
        """The fsspec URL every machine reads the page images from, or ``None`` (a folder only)."""
        return self._mirror.url if self._mirror is not None else None

    @property
    def embedder(self) -> EmbedderInfo | None:
        """The embedder the stored pages were written with; ``None`` while the store is empty."""
        with self._lock:
            meta = self._current()
            with self._call("reading the collection"):
                if self._backend.count() == 0:
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
                (what :class:`~pagesight.retrieval.store.MultiVectorStore` records of its
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
        vectors = check_pages(pages, embeddings, embedder)
        extra = _check_extra_metadata(extra_metadata)
        source, content_hash = pages[0].source, pages[0].content_hash
        with self._lock, self._bm25.writing():
            self.lock_for_writing()
            self._prepare_write(embedder, extra)
            backend = self._backend
            ids = [p.id for p in pages]
            existing = self._existing_ids(ids)
            placed: list[tuple[Path, Path, bool]] = []  # (staging file, store file, created)
            uploaded: list[str] = []  # images this write created at the image URL
            written: list[str] = []
            new = [p for p in pages if p.id not in existing]
            self._bm25.touch()  # before records change: a write cut short is then seen (and rebuilt)
            intent = self._intent(
                f"adding {source}",
                [p.id for p in new],
                [image_relpath(p.content_hash, p.page, Path(p.image).suffix) for p in new if p.image],
            )
            try:
                rels = self._place_images(pages, placed, uploaded)
                metadatas = [_page_metadata(p, rel, len(pages)) for p, rel in zip(pages, rels, strict=True)]
                step = self._batch_size()
                for start in range(0, len(pages), step):
                    end = min(start + step, len(pages))
                    with self._call(f"writing pages {pages[start].page}-{pages[end - 1].page} of {source}"):
                        written.extend(ids[start:end])
                        backend.upsert(
                            ids[start:end],
                            vectors[start:end],
                            [p.text for p in pages[start:end]],
                            metadatas[start:end],
                        )
            except BaseException:
                self._rollback([i for i in written if i not in existing], placed, uploaded)
                if intent is not None:
                    _journal.finish(intent)
                raise
            self._bm25.added(pages)
            for staging, stored, _ in placed:
                if staging.resolve() != stored.resolve():
                    staging.unlink(missing_ok=True)
            removed = self._delete_where(source, keep_hash=content_hash, replace=intent)
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
        check_int("k", k, least=1)
        query = _check_query(query_embedding, embedder)
        if source is not None and not is_storable_name(source):
            return []  # never stored (see documents.source_name); Chroma would reject the filter
        with self._lock:
            backend = self._open()
        with self._call("searching"):
            if backend.count() == 0:
                return []
            recorded = _decode_embedder(backend.read_metadata(fresh=False))
        if recorded != embedder:
            # This handle may have opened the collection before another one recorded its embedder.
            recorded = _decode_embedder(self._current())
        with self._call("searching"):
            self._check_embedder(recorded, embedder, "search")
            rows = backend.query(query, k, {"source": source} if source is not None else None)
        # A record another process deleted while this one searched can come back from a vector index
        # loaded before the delete, without its metadata: it is no longer a page, so it is left out.
        hits = [
            self._hit(id_, doc, meta, score, check=True) for id_, doc, meta, score in rows if meta is not None
        ]
        hits.sort(key=lambda h: -h.score)
        return hits

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """Every page's id (sorted) and stored vector, shape ``(pages, dims)`` (what clustering uses).

        Raises:
            StoreError: the backend cannot list vectors.
        """
        with self._lock:
            backend = self._open()
        scan = getattr(backend, "scan_vectors", None)
        if scan is None:
            raise StoreError(f"store {self.location}: its {backend.name} backend cannot list page vectors")
        step = self._batch_size()
        ids: list[str] = []
        parts: list[np.ndarray] = []
        offset = 0
        while True:
            with self._call("reading page vectors"):
                got, vecs = scan(limit=step, offset=offset)
            ids.extend(got)
            if len(got):
                parts.append(vecs)
            if len(got) < step:
                break
            offset += step
        if not ids:
            return [], np.zeros((0, 0), dtype=np.float32)
        matrix = np.concatenate(parts)
        order = sorted(range(len(ids)), key=ids.__getitem__)
        return [ids[i] for i in order], matrix[order]

    def bm25_index(self) -> SegmentedBM25:
        """The store's BM25 index over the page texts, current with the pages.

        Saved beside the records (``<path>/bm25``; a local cache for a server store) and updated
        by every write, so it is loaded, not rebuilt: the first call memory-maps it, later calls
        check in one ``stat`` (one small request for a server store) whether another process
        changed it. An index a crash left behind, or one of another collection, is rebuilt from the
        pages (see :mod:`pagesight.retrieval.store._bm25`).
        """
        return self._bm25.index()

    def get(self, ids: Sequence[str]) -> list[Hit]:
        """Return the stored pages with these ids, in the order given; unknown ids are skipped."""
        if not ids:
            return []
        with self._lock:
            backend = self._open()
        found: dict[str, Hit] = {}
        unique = list(dict.fromkeys(ids))
        step = self._batch_size()
        for start in range(0, len(unique), step):
            with self._call("reading pages"):
                rows = backend.get(unique[start : start + step])
            for id_, doc, meta in rows:
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
                no_image += image is None or not self._has_image(image)
        if no_image:
            logger.warning(
                "%s: %d of its page images are missing from %s; it will be re-indexed",
                source,
                no_image,
                self.image_url or self._image_dir,
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
            backend = self._open()
        with self._call("reading the store"):
            rows = backend.scan({"content_hash": content_hash}, limit=1, include=("metadatas",))
        if not rows:
            return None
        return str(rows[0][2]["source"])

    def delete_source(self, source: str) -> int:
        """Delete every page of ``source`` and its image files; return how many pages were removed."""
        with self._lock:
            self.lock_for_writing()
            self._open()
            removed = self._delete_where(source, keep_hash=None)
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
                meta = self._current()
            except DamagedStoreError:
                return None
            finally:
                self._suspend_checks -= 1
        kind = meta.get(_KIND_KEY)
        return str(kind) if kind else None

    def collection_id(self) -> str:
        """The backend collection's id (a new one when the database was replaced)."""
        self._current()
        return self._backend.identity()

    def check(self) -> StoreHealth:
        """Compare the database, the image folder and the journal; report where they disagree.

        Changes nothing: the journal is not replayed and nothing is removed (see :meth:`repair`).
        Reads every record's metadata and lists the image folder.

        Returns:
            A :class:`~pagesight.retrieval.store.health.StoreHealth`; ``.ok`` is ``False`` when anything is
            missing or left over, ``.problems()`` lists it.

        Raises:
            StoreError: the store cannot be reached (a server that is down); a database that cannot
                be read is reported, not raised.
        """
        return self.check_records()[0]

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
                            if self._mirror is not None:
                                self._mirror.remove(rel)
                    if health.orphan_images:
                        logger.warning(
                            "store %s: removed %d page images no record uses",
                            self.location,
                            len(health.orphan_images),
                        )
            finally:
                self._suspend_checks -= 1
            return self.check()

    def check_records(self) -> tuple[StoreHealth, list[PageRef]]:
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
            remote, refused_remote = self._remote_files()
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
                    name = self._image_name(path)
                    referenced.add(name)
                    referenced.add(words_name(name))  # its OCR word boxes, if any
                    if not path.is_file() and (remote is None or name not in remote):
                        missing.append(PageRef(ref.id, ref.source, ref.page, str(rel)))
            except DamagedStoreError as e:
                database_error = str(e.__cause__ or e)
                records = []
            files = sorted(set(self._image_files()) | (remote or set()))
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
                refused_paths=tuple(refused + refused_remote),
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
            meta = self._current()
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
            backend = self._open()
            doomed: list[tuple[str, dict[str, Any]]] = []
            unique = list(dict.fromkeys(ids))
            step = self._batch_size()
            for start in range(0, len(unique), step):
                with self._call("reading pages"):
                    rows = backend.get(unique[start : start + step], include=("metadatas",))
                doomed.extend((id_, meta) for id_, _, meta in rows)
            self._remove(doomed, "deleting pages", None)
        return len(doomed)

    def lock_for_writing(self) -> None:
        """Take this store's inter-process write lock now (writes take it themselves); kept until close.

        Embedded stores only; a no-op for a server store.

        Raises:
            StoreError: another process holds it for longer than ``lock_timeout`` (names its pid).
        """
        with self._lock:
            if getattr(self._backend, "read_only", False):
                raise StoreError(
                    f"store {self.location} was opened read-only (a collection another tool wrote); "
                    "index into a pagesight store instead"
                )
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

        What :class:`~pagesight.retrieval.store.MultiVectorStore` runs its repairs under when
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
            backend = self._open()
        with self._call("counting pages"):
            return int(backend.count())

    def close(self) -> None:
        """Release the backend's client; the store reopens if it is used again."""
        with self._lock:
            self._verified = False
            if self._writing and self._release is not None:
                self._release()  # runs the release once
            self._writing = False
            self._bm25.close()
            self._backend.close()

    def __enter__(self) -> PageStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PageStore({self._backend.arguments()})"

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> StoreBackend:
        """Return the backend, connecting it and creating the collection on first use (caller holds
        the lock).

        An embedded store is verified once per connection (:meth:`_verify`): a damaged one raises
        :class:`DamagedStoreError` from every call until it is repaired.
        """
        backend = self._backend
        if backend.connected and (self._verified or self._suspend_checks):
            return backend
        if not backend.connected:
            self._connect()
        if not self._suspend_checks:
            self._verify()
            self._verified = True
        return backend

    def _connect(self) -> None:
        """Connect, create the collection if missing, and repair what a crash left (lock free)."""
        self._backend.connect(self._other_writer)
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

    # -- crash recovery --------------------------------------------------------------------------

    def _verify(self) -> None:
        """Cheap agreement check of an embedded store on open: an empty database beside page images
        or token matrices written for another database is a lost database, not an empty store.

        Raises:
            DamagedStoreError: with what is missing and how to repair it.
        """
        if self._path is None:
            return
        with self._call("counting pages"):
            if self._backend.count() > 0:
                return
        jdir = self._path / _journal.JOURNAL_DIR
        if jdir.is_dir() and any(p.suffix == ".json" for p in jdir.iterdir()):
            return  # a write in progress (another process) or to be repaired: not a lost database
        images = next(self._image_files(), None)
        tokens = _token_owner_mismatch(self._path / "tokens", self._backend.identity())
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

    def _remote_files(self) -> tuple[set[str] | None, list[str]]:
        """``(relative paths of the files at the image URL, names refused there)``: each name is
        checked as a stored path (one that would leave the image folder is refused); ``(None, [])``
        without an image URL."""
        if self._mirror is None:
            return None, []
        out, refused = set(), []
        for rel in self._mirror.files():
            if resolve_stored_path(self._image_dir, rel, what=f"file at {self._mirror.url}") is not None:
                out.add(rel)
            else:
                refused.append(f"{self._mirror.url}: {rel!r}")
        return out, refused

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
            if not self._backend.connected:
                self._open()
            for intent in intents:
                action = f"repairing an interrupted write ({intent.action})"
                self._delete_records(list(intent.ids), list(intent.images), action)
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

    def _current(self) -> dict[str, Any]:
        """The collection's metadata as it is now.

        A handle caches the collection when it opens; another handle, process or server client may
        have recorded the embedder (or replaced the collection) since.
        """
        with self._lock:
            backend = self._open()
            with self._call("reading the collection"):
                return backend.read_metadata()

    def _prepare_write(self, embedder: EmbedderInfo, extra: dict[str, Any] | None = None) -> None:
        """Check ``embedder`` (and ``extra`` keys) against the store; record them if it is empty."""
        extra = extra or {}
        current = self._current()
        backend = self._backend
        with self._call("reading the collection"):
            count = backend.count()
            recorded = _decode_embedder(current)
            recorded_extra = {k: current.get(k) for k in extra}
            if count > 0:
                if recorded is None:
                    raise StoreError(
                        f"store {self.location} holds {count} records that pagesight did not write. "
                        "Use another collection name or --store folder."
                    )
                self._check_embedder(recorded, embedder, "write")
                if recorded_extra != extra:
                    raise StoreMismatchError(
                        f"store {self.location} records {recorded_extra}; refusing to write with {extra}. "
                        "Use a new --store folder or the original settings."
                    )
                return
            if recorded == embedder and recorded_extra == extra:
                return
            if recorded is not None and recorded != embedder:
                # Empty but fixed to another embedder (Chroma keeps a collection's dimension after the
                # last record is deleted): start afresh.
                backend.reset()
                current = backend.read_metadata(fresh=False)
            meta = {k: v for k, v in current.items() if not (extra and k.startswith("pagesight:"))}
            backend.write_metadata({**meta, **_encode_embedder(embedder), **extra})

    def _check_embedder(self, recorded: EmbedderInfo | None, given: EmbedderInfo, action: str) -> None:
        if recorded is not None and recorded != given:
            raise StoreMismatchError(
                f"store {self.location} was built with {recorded.describe()}; refusing to {action} with "
                f"{given.describe()}. Use a new --store folder or re-index with the original model."
            )

    # -- writing helpers -------------------------------------------------------------------------

    def _batch_size(self) -> int:
        """Records per backend call: the backend's limit (asked once), capped by ``max_batch_size``."""
        with self._lock:
            backend = self._open()
            with self._call("reading the batch size"):
                limit = backend.max_batch_size()
        if self.max_batch_size is not None:
            limit = min(limit, self.max_batch_size)
        return max(1, limit)

    def _existing_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        step = self._batch_size()
        for start in range(0, len(ids), step):
            with self._call("reading existing pages"):
                found.update(id_ for id_, _, _ in self._backend.get(ids[start : start + step], include=()))
        return found

    def _place_images(
        self, pages: Sequence[Page], placed: list[tuple[Path, Path, bool]], uploaded: list[str]
    ) -> list[str]:
        """Put each page's image in the store (and at the image URL, before any record names it);
        append what was placed to ``placed`` and what was uploaded to ``uploaded`` as it goes."""
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
            words = src.with_name(words_name(src.name))  # OCR word boxes (documents.ocr.words_path)
            stored_words = dst.with_name(words_name(dst.name))
            if words.is_file() and words.resolve() != stored_words.resolve():
                try:
                    place_image(words, stored_words)
                except OSError as e:  # the boxes only serve heatmaps: the page is still written
                    logger.info("could not copy the OCR word boxes %s: %s", words, e)
            if self._mirror is not None:
                if self._mirror.put(dst, rel):
                    uploaded.append(rel)
                if stored_words.is_file():
                    try:
                        self._mirror.put(stored_words, words_name(rel))
                    except StoreError as e:  # heatmaps only, as above
                        logger.info("could not upload the OCR word boxes %s: %s", stored_words, e)
            rels.append(rel)
        return rels

    def _rollback(
        self, new_ids: list[str], placed: list[tuple[Path, Path, bool]], uploaded: Sequence[str] = ()
    ) -> None:
        step = self._batch_size_or(len(new_ids))
        for start in range(0, len(new_ids), step):
            try:
                self._backend.delete(new_ids[start : start + step])
            except Exception as e:
                logger.error("rollback in %s could not delete %d records: %s", self.location, len(new_ids), e)
        for _, stored, created in placed:
            if created:
                remove_image(stored)
        if self._mirror is not None:
            for rel in uploaded:
                self._mirror.remove(rel)
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

    def _delete_where(self, source: str, *, keep_hash: str | None, replace: Path | None = None) -> int:
        """Delete pages of ``source`` (except those with ``keep_hash``) and their images.

        ``replace``: the journal file of the write this delete completes (swapped for the delete's).
        """
        doomed = [
            (id_, meta)
            for id_, _, meta in self._scan(source, include=["metadatas"])
            if keep_hash is None or meta.get("content_hash") != keep_hash
        ]
        self._remove(doomed, f"deleting pages of {source}", replace)
        return len(doomed)

    def _remove(self, doomed: list[tuple[str, dict[str, Any]]], action: str, replace: Path | None) -> None:
        """Journal, then delete records, then their images; then close the journal entry."""
        ids = [id_ for id_, _ in doomed]
        images = [
            str(meta["image"])
            for id_, meta in doomed
            if meta and meta.get("image") and self._stored_image(meta["image"], f"image of record {id_!r}")
        ]
        intent = self._intent(action, ids, images, replace=replace)
        self._delete_records(ids, images, action)
        if intent is not None:
            _journal.finish(intent)

    def _delete_records(self, ids: list[str], images: list[str], action: str) -> None:
        """Delete records in batches the backend accepts, then their image files (both idempotent)."""
        step = self._batch_size()
        with self._bm25.writing():
            if ids:
                self._bm25.touch()
            for start in range(0, len(ids), step):
                with self._call(action):
                    self._backend.delete(ids[start : start + step])
            self._bm25.deleted(ids)
        for rel in images:
            path = self._stored_image(rel, "image to delete")
            if path is not None:
                remove_image(path, self._image_dir)
                if self._mirror is not None:
                    self._mirror.remove(self._image_name(path))

    # -- reading helpers -------------------------------------------------------------------------

    def _scan(self, source: str | None, *, include: Sequence[str]) -> Iterator[Row]:
        """Yield (id, document, metadata) of every record (of ``source``), a batch at a time."""
        if source is not None and not is_storable_name(source):
            return  # never stored: documents.source_name refuses names that are not valid UTF-8
        with self._lock:
            backend = self._open()
        step = self._batch_size()
        offset = 0
        while True:
            with self._call("listing pages"):
                rows = backend.scan(
                    {"source": source} if source is not None else None,
                    limit=step,
                    offset=offset,
                    include=include,
                )
            yield from rows
            if len(rows) < step:
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
        if image is not None and self._mirror is not None and not image.is_file():
            self._fetch(image)
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
            text_source=as_text_source(meta.get("text_source")),
            page_label=as_page_label(meta.get("page_label")),  # absent in older stores: None
        )

    def _fetch(self, image: Path) -> bool:
        """Copy ``image`` (a checked path in the image folder) from the image URL; ``False`` when the
        URL lacks it or cannot be read (warned once per image)."""
        assert self._mirror is not None
        rel = self._image_name(image)
        try:
            return self._mirror.fetch(rel, image)
        except StoreError as e:
            if rel not in self._warned_fetch:
                self._warned_fetch.add(rel)
                logger.warning("store %s: %s", self.location, e)
            return False

    def _has_image(self, image: Path) -> bool:
        """Whether a page image is in the local folder or, with an image URL, there."""
        if image.is_file():
            return True
        return self._mirror is not None and self._mirror.exists(self._image_name(image))

    def _image_name(self, image: Path) -> str:
        """The ``/``-separated name of ``image`` (a checked path in the image folder) there and at
        the image URL."""
        return image.relative_to(self._image_dir).as_posix()

    def _stored_image(self, rel: object, what: str) -> Path | None:
        """The image file a stored relative path names, or ``None`` if it would leave the image folder."""
        path = resolve_stored_path(self._image_dir, rel, what=f"{what} in store {self.location}")
        if path is None:
            self._refused.add(repr(rel))
        return path

    def _call(self, action: str) -> AbstractContextManager[None]:
        """Turn the backend's exceptions in the block into :class:`StoreError` naming ``action``."""
        return self._backend.errors(action, self._other_writer)

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
    from pagesight.retrieval.store.tokens import inspect_token_folder

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
        kind=as_kind(meta[_KIND_KEY]),
    )


def _page_metadata(page: Page, image_rel: str, source_pages: int) -> dict[str, str | int]:
    label = getattr(page, "page_label", None)
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
        **({"page_label": str(label)} if label else {}),  # the printed page label, when the PDF has one
    }


def check_pages(pages: Sequence[Page], embeddings: np.ndarray, embedder: EmbedderInfo) -> np.ndarray:
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

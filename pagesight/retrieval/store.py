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
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pagesight._deps import require
from pagesight.documents.page import Page
from pagesight.errors import (
    ConfigurationError,
    InvalidVectorError,
    PagesightError,
    StoreError,
    StoreMismatchError,
)
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval._images import image_relpath, place_image, remove_image

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

    Attributes:
        max_batch_size: cap on records per Chroma call below the client's own
            ``get_max_batch_size()``; ``None`` (the default) uses the client's limit.
    """

    max_batch_size: int | None = None

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        image_dir: str | Path | None = None,
        collection: str = "pagesight",
    ) -> None:
        """Describe a store; nothing is opened until it is used.

        Args:
            path: folder of an embedded Chroma database (created on first use if missing).
            url: ``http://host:port`` (or ``https://``) of a Chroma server. Give exactly one of
                ``path`` and ``url``.
            image_dir: folder for page images (see the class docstring for the defaults).
            collection: the Chroma collection's name.

        Raises:
            ConfigurationError: neither or both of ``path`` and ``url``, or a malformed ``url``.
        """
        if (path is None) == (url is None):
            raise ConfigurationError("give exactly one of `path` (a folder) or `url` (a Chroma server)")
        self._path = Path(path).expanduser() if path is not None else None
        self._url = url
        self._server: tuple[str, int, bool] | None = None
        if url is not None:
            self._server = _parse_url(url)
        self._collection_name = collection
        if image_dir is not None:
            self._image_dir = Path(image_dir).expanduser()
        elif self._path is not None:
            self._image_dir = self._path / "images"
        else:
            assert self._server is not None  # set above whenever url is given
            host, port, _ = self._server
            self._image_dir = _cache_dir() / "images" / f"{host}-{port}" / collection
        self._lock = threading.RLock()
        self._client: Any = None
        self._collection: Any = None
        self._client_batch_limit: int | None = None

    # -- public API ----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The store's folder or server URL and collection, as error messages name it."""
        where = str(self._path) if self._path is not None else str(self._url)
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
            col = self._open()
            with self._chroma("reading the collection"):
                if col.count() == 0:
                    return None
                return _decode_embedder(col.metadata)

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
            StoreError: inconsistent pages, a missing image file, or Chroma failed.
        """
        if not pages:
            return
        vectors = _check_pages_and_vectors(pages, embeddings, embedder)
        source, content_hash = pages[0].source, pages[0].content_hash
        with self._lock:
            col = self._prepare_write(embedder, dict(extra_metadata or {}))
            ids = [p.id for p in pages]
            existing = self._existing_ids(col, ids)
            placed: list[tuple[Path, Path, bool]] = []  # (staging file, store file, created)
            written: list[str] = []
            try:
                rels = self._place_images(pages, placed)
                metadatas = [_page_metadata(p, rel) for p, rel in zip(pages, rels, strict=True)]
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
                raise
            for staging, stored, _ in placed:
                if staging.resolve() != stored.resolve():
                    staging.unlink(missing_ok=True)
            removed = self._delete_where(col, source, keep_hash=content_hash)
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
        with self._lock:
            col = self._open()
        with self._chroma("searching"):
            if col.count() == 0:
                return []
            self._check_embedder(_decode_embedder(col.metadata), embedder, "search")
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
        hits = [self._hit(id_, doc, meta, 1.0 - float(dist)) for id_, doc, meta, dist in rows]
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
                found[id_] = self._hit(id_, doc, meta, 0.0)
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
        """Return the content hash stored for ``source``, or ``None`` if it is not indexed.

        Ingest compares it with the file's current hash to skip unchanged sources.
        """
        with self._lock:
            col = self._open()
        with self._chroma(f"reading {source}"):
            res = col.get(where={"source": source}, limit=1, include=["metadatas"])
        if not res["ids"]:
            return None
        return str(res["metadatas"][0]["content_hash"])

    def delete_source(self, source: str) -> int:
        """Delete every page of ``source`` and its image files; return how many pages were removed."""
        with self._lock:
            col = self._open()
            removed = self._delete_where(col, source, keep_hash=None)
        if removed:
            logger.info("deleted %d pages of %s from %s", removed, source, self.location)
        return removed

    def metadata(self) -> dict[str, Any]:
        """Return the ``pagesight:*`` keys of the collection's metadata (embedder and extras)."""
        with self._lock:
            col = self._open()
            with self._chroma("reading the collection"):
                return {k: v for k, v in (col.metadata or {}).items() if k.startswith("pagesight:")}

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
            col = self._open()
            doomed: list[tuple[str, dict[str, Any]]] = []
            unique = list(dict.fromkeys(ids))
            step = self._batch_size()
            for start in range(0, len(unique), step):
                with self._chroma("reading pages"):
                    res = col.get(ids=unique[start : start + step], include=["metadatas"])
                doomed.extend(zip(res["ids"], res["metadatas"] or [{}] * len(res["ids"]), strict=True))
            for start in range(0, len(doomed), step):
                with self._chroma("deleting pages"):
                    col.delete(ids=[id_ for id_, _ in doomed[start : start + step]])
            for _, meta in doomed:
                if meta and meta.get("image"):
                    remove_image(self._image_dir / str(meta["image"]))
        return len(doomed)

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
        """Return the collection, connecting and creating it on first use (caller holds the lock)."""
        if self._collection is not None:
            return self._collection
        chromadb = require("chromadb", "chroma")
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        with self._chroma("opening the store"):
            if self._path is not None:
                self._path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            else:
                assert self._server is not None
                host, port, ssl = self._server
                client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
            self._client = client
            self._collection = self._get_or_create(client)
        return self._collection

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
        col = self._open()
        with self._chroma("reading the collection"):
            count = col.count()
            recorded = _decode_embedder(col.metadata)
            recorded_extra = {k: (col.metadata or {}).get(k) for k in extra}
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
            meta = {
                k: v
                for k, v in (col.metadata or {}).items()
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
            dst = self._image_dir / rel
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

    def _delete_where(self, col: Any, source: str, *, keep_hash: str | None) -> int:
        """Delete pages of ``source`` (except those with ``keep_hash``) and their images."""
        doomed = [
            (id_, meta)
            for id_, _, meta in self._scan(source, include=["metadatas"])
            if keep_hash is None or meta.get("content_hash") != keep_hash
        ]
        step = self._batch_size()
        for start in range(0, len(doomed), step):
            with self._chroma(f"deleting pages of {source}"):
                col.delete(ids=[id_ for id_, _ in doomed[start : start + step]])
        for _, meta in doomed:
            if meta.get("image"):
                remove_image(self._image_dir / str(meta["image"]))
        return len(doomed)

    # -- reading helpers -------------------------------------------------------------------------

    def _scan(self, source: str | None, *, include: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Yield (id, document, metadata) of every record (of ``source``), a batch at a time."""
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

    def _hit(self, id_: str, doc: str | None, meta: dict[str, Any] | None, score: float) -> Hit:
        meta = meta or {}
        rel = str(meta.get("image") or "")
        return Hit(
            id=id_,
            source=str(meta.get("source", "")),
            page=int(meta.get("page", 0)),
            text=doc or "",
            image=self._image_dir / rel if rel else None,
            width=int(meta.get("width", 0)),
            height=int(meta.get("height", 0)),
            content_hash=str(meta.get("content_hash", "")),
            score=score,
        )

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
            raise StoreError(f"store {self.location}: {action} failed: {type(e).__name__}: {e}") from e


# -- module helpers --------------------------------------------------------------------------------


def _is_backend_error(e: Exception) -> bool:
    """Whether ``e`` comes from Chroma, its Rust bindings, its HTTP transport or the filesystem."""
    module = type(e).__module__ or ""
    if module.startswith(("chromadb", "httpx", "httpcore")):
        return True
    # The Rust bindings and client-side validation raise builtins (ValueError, TypeError,
    # UnicodeEncodeError); sqlite and the network raise OSError subclasses.
    return isinstance(e, ValueError | TypeError | OSError)


def _parse_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"`url` must look like http://host:port, got {url!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(f"`url` has an invalid port: {url!r}") from e
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


def _page_metadata(page: Page, image_rel: str) -> dict[str, str | int]:
    return {
        "source": page.source,
        "page": int(page.page),
        "image": image_rel,
        "width": int(page.width),
        "height": int(page.height),
        "content_hash": page.content_hash,
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

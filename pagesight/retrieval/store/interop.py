"""Search a Chroma collection another tool wrote (langchain-chroma, LlamaIndex's ``ChromaVectorStore``).

Such a collection records no embedder and is often in Chroma's default ``l2`` space, where
pagesight's own collections are ``cosine``. :func:`open_chroma_collection` opens it **read-only**
when it fits the embedder you name and refuses it with :class:`~pagesight.errors.StoreMismatchError`
saying what differs otherwise::

    from pagesight.retrieval.store.interop import open_chroma_collection

    store = open_chroma_collection("chroma_db/", "langchain", embedder=encoder)   # a PageStore
    store.search(encoder.encode_queries(["..."])[0], k=5, embedder=encoder.info)
    Index.open(store, encoder=encoder).search("...", k=5)                         # hybrid, BM25 too

What fits:

- **dimension**: the stored vectors have the embedder's ``dimensions``;
- **distance**: ``cosine``; or ``l2`` / ``ip`` when the stored vectors are unit length (checked on
  a sample), since then squared L2 is ``2 - 2 cos`` and ``1 - ip`` is ``1 - cos``: the ranking is
  the cosine ranking and scores are turned back into cosines. Vectors of other lengths are refused
  (their l2 ranking is not a cosine ranking).

Which model wrote the vectors cannot be read from the collection (neither tool records it): name
the one that did. Hits take ``source`` from the record's ``source`` metadata (langchain loaders),
else ``file_path`` / ``file_name`` (LlamaIndex readers); ``page`` is the record's own ``page``
metadata as its loader wrote it (langchain's PDF loaders count from 0); no page images. Writes
raise :class:`~pagesight.errors.StoreError`. The BM25 index is a local cache, keyed by the folder
(or server) and collection, rebuilt when the collection's record count changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pagesight.errors import StoreError, StoreMismatchError, StoreNotFoundError
from pagesight.retrieval.store.base import Row, ScoredRow
from pagesight.retrieval.store.chroma import ChromaBackend, _cache_dir
from pagesight.retrieval.store.pages import PageStore, _encode_embedder
from pagesight.types import EmbedderInfo

__all__ = ["ForeignChromaBackend", "open_chroma_collection"]

_SAMPLE = 64  # vectors read to check their dimension and length
_NORM_TOLERANCE = 1e-2


class ForeignChromaBackend(ChromaBackend):
    """A Chroma collection pagesight did not write, read-only, searched as cosine (see the module).

    Args:
        path, url, headers, tenant, database, client_settings: as :class:`ChromaBackend`'s.
        collection: the collection's name (langchain-chroma's default is ``"langchain"``).
        embedder: the embedder that wrote the vectors (it is recorded nowhere in the collection).
    """

    read_only = True

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        collection: str,
        embedder: EmbedderInfo,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        database: str | None = None,
        client_settings: Any = None,
    ) -> None:
        super().__init__(
            path,
            url=url,
            headers=headers,
            tenant=tenant,
            database=database,
            collection=collection,
            client_settings=client_settings,
        )
        self._declared = embedder
        self._space = "cosine"

    @property
    def folder(self) -> Path | None:
        """``None``: nothing (journal, lock, index) is written into another tool's folder."""
        return None

    @property
    def space(self) -> str:
        """The collection's distance (``cosine``, ``l2`` or ``ip``), known once connected."""
        self.collection()
        return self._space

    def local_dir(self, what: str) -> Path:
        """A local cache folder per Chroma folder (or server) and collection."""
        if self._path is None:
            return super().local_dir(what)
        key = hashlib.sha256(str(self._path.resolve()).encode()).hexdigest()[:16]
        return _cache_dir() / what / f"chroma-folder-{key}" / self._collection_name

    def _get_or_create(self, client: Any) -> Any:
        try:
            col = client.get_collection(self._collection_name, embedding_function=None)
        except Exception as e:
            if not type(e).__module__.startswith("chromadb") and not isinstance(e, ValueError):
                raise
            names = sorted(str(getattr(c, "name", c)) for c in client.list_collections())
            raise StoreNotFoundError(
                f"{self.location}: no collection named {self._collection_name!r}; it holds {names or 'none'}"
            ) from e
        hnsw = ((col.configuration or {}).get("hnsw") or {}) if hasattr(col, "configuration") else {}
        space = hnsw.get("space") or (col.metadata or {}).get("hnsw:space") or "l2"
        self._space = str(space)
        return col

    def read_metadata(self, *, fresh: bool = True) -> dict[str, Any]:
        """The collection's metadata with the declared embedder recorded in it (in memory only)."""
        return {**super().read_metadata(fresh=fresh), **_encode_embedder(self._declared)}

    def check_fit(self) -> None:
        """Refuse a collection whose vectors do not fit the declared embedder.

        Raises:
            StoreMismatchError: another dimension, an unknown distance, or l2/ip vectors that are
                not unit length (the message says which and what to do).
            StoreError: the collection cannot be read.
        """
        col = self.collection()
        with self.errors("reading the collection"):
            sample = col.get(limit=_SAMPLE, include=["embeddings"])
        vectors = np.asarray(sample.get("embeddings") if sample.get("embeddings") is not None else [])
        where = f"collection {self._collection_name!r} in {self.location}"
        if self._space not in ("cosine", "l2", "ip"):
            raise StoreMismatchError(
                f"{where} uses {self._space!r} distance; pagesight reads cosine, l2 or ip"
            )
        if vectors.size == 0:
            return
        dims = int(vectors.shape[1])
        if dims != self._declared.dimensions:
            raise StoreMismatchError(
                f"{where} holds {dims}-dimensional vectors; {self._declared.describe()} makes "
                f"{self._declared.dimensions}. Name the embedder that wrote the collection."
            )
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        if self._space != "cosine" and np.abs(norms - 1.0).max() > _NORM_TOLERANCE:
            worst = float(norms[np.argmax(np.abs(norms - 1.0))])
            raise StoreMismatchError(
                f"{where} uses {self._space} distance and holds vectors of length {worst:.3g}, not 1: "
                "its ranking is not a cosine ranking, which pagesight needs. Write the collection with "
                'normalized vectors or with collection_metadata={"hnsw:space": "cosine"} '
                '(langchain-chroma: collection_configuration={"hnsw": {"space": "cosine"}}).'
            )

    # -- reading: metadata mapped, distances as cosine ------------------------------------------------

    def query(self, vector: np.ndarray, k: int, where: Mapping[str, str] | None = None) -> list[ScoredRow]:
        rows = super().query(vector, k, where)
        out: list[ScoredRow] = []
        for id_, doc, meta, cosine_like in rows:
            distance = 1.0 - cosine_like  # ChromaBackend returned 1 - distance
            # squared L2 of unit vectors is 2 - 2 cos; ip distance is 1 - cos
            score = 1.0 - distance / 2.0 if self._space == "l2" else 1.0 - distance
            out.append((id_, doc, _mapped(meta), score))
        return out

    def get(self, ids: Sequence[str], *, include: Sequence[str] = ("documents", "metadatas")) -> list[Row]:
        return [(i, d, _mapped(m)) for i, d, m in super().get(ids, include=include)]

    def scan(
        self,
        where: Mapping[str, str] | None = None,
        *,
        limit: int,
        offset: int = 0,
        include: Sequence[str] = ("documents", "metadatas"),
    ) -> list[Row]:
        rows = super().scan(where, limit=limit, offset=offset, include=include)
        return [(i, d, _mapped(m)) for i, d, m in rows]

    # -- writing: refused ----------------------------------------------------------------------------

    def _refuse(self, *_: Any, **__: Any) -> None:
        raise StoreError(f"{self.location}: opened read-only (a collection another tool wrote)")

    upsert = _refuse
    delete = _refuse
    reset = _refuse
    write_metadata = _refuse


def _mapped(meta: Any) -> Any:
    if meta is None:
        return None
    meta = dict(meta)
    if not meta.get("source"):
        meta["source"] = str(meta.get("file_path") or meta.get("file_name") or "")
    meta.pop("image", None)  # another tool's path: not a page image of this store
    return meta


def open_chroma_collection(
    location: str | Path,
    collection: str,
    *,
    embedder: EmbedderInfo | Any,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
    client_settings: Any = None,
) -> PageStore:
    """Open a collection langchain-chroma or LlamaIndex wrote, read-only, if it fits ``embedder``.

    Args:
        location: the Chroma folder (``persist_directory``) or ``http(s)://host:port``.
        collection: the collection's name.
        embedder: the :class:`~pagesight.types.EmbedderInfo` (or an encoder, whose ``info`` is
            used) of the model that wrote the vectors.
        headers, tenant, database: server options, as :class:`PageStore`'s.
        client_settings: ``chromadb.config.Settings`` (default: see :class:`ChromaBackend`).

    Returns:
        A :class:`PageStore` that searches and lists the collection and refuses writes.

    Raises:
        StoreNotFoundError: no such collection (the message lists those there are).
        StoreMismatchError: the vectors do not fit ``embedder`` (see the module docstring).
    """
    info = embedder if isinstance(embedder, EmbedderInfo) else embedder.info
    where = str(location)
    url = where if "://" in where else None
    backend = ForeignChromaBackend(
        None if url else where,
        url=url,
        collection=collection,
        embedder=info,
        headers=headers,
        tenant=tenant,
        database=database,
        client_settings=client_settings,
    )
    if url is None and not Path(where).is_dir():
        raise StoreNotFoundError(f"no Chroma folder at {where}")
    store = PageStore(backend=backend)
    with backend.errors("opening the collection"):
        backend.connect()
    backend.check_fit()
    return store

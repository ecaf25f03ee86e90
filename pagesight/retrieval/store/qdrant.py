"""Qdrant as a store backend: page records with a summary vector and a token multivector (MAX_SIM).

Install::

    pip install "pagesight[qdrant]"

Use::

    from pagesight.retrieval.store.open import open_multivector_store

    store = open_multivector_store("qdrant+path://index-qdrant", image_dir="/shared/pages")  # local mode
    store = open_multivector_store("qdrant://qdrant.internal:6333/docs", image_dir="/shared/pages")
    store.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
    store.search(query_tokens, k=5, embedder=encoder.info)   # Qdrant: summary prefetch, MAX_SIM rerank

One Qdrant collection per store. Each page is one point (its id: a UUID derived from the page id)
with two named vectors, ``summary`` (cosine; the mean of the page's tokens that
:class:`~pagesight.retrieval.store.PageStore` writes) and, for late interaction, ``tokens`` (a
multivector compared by ``MAX_SIM`` on the dot product, not HNSW-indexed: it only reranks), and a
payload with the page's text and metadata. Page and tokens go in one point upsert, so a point never
has a record without its tokens. Search is Qdrant's documented two-stage query: a prefetch of the
``candidates`` nearest summaries, reranked by MaxSim over their token vectors inside Qdrant.
The store options (embedder, summary, storage...) are the collection's metadata.

The same code runs against a Qdrant server or cluster (``qdrant://host:port/collection``, API key
from ``$QDRANT_API_KEY``) and in Qdrant's local mode (``qdrant+path://folder``, one process at a
time). Page images go to ``image_dir``, which every machine that reads the store must reach (a
shared folder); without it, to ``$PAGESIGHT_IMAGE_DIR/qdrant-<host>-<port>/<collection>`` when that
variable names a shared folder, else to this machine's cache (readable by this machine only).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pagesight.errors import ConfigurationError, PagesightError, StoreError

__all__ = ["QdrantBackend", "QdrantTokens", "open_qdrant"]

_NAMESPACE = uuid.UUID("6f1d2c52-8c1e-4f7a-9a55-2f1f0f6b9e18")
_ID = "pagesight_id"
_DOC = "pagesight_document"
_META = "pagesight_meta"
_SUMMARY = "summary"
_TOKENS = "tokens"


def _qdrant() -> Any:
    try:
        import qdrant_client
    except ImportError as e:
        raise ConfigurationError(
            'the Qdrant backend needs qdrant-client: pip install "pagesight[qdrant]"'
        ) from e
    return qdrant_client


def point_id(page_id: str) -> str:
    """The Qdrant point id of a page: a UUID5 of the page id (Qdrant takes UUIDs or integers)."""
    return str(uuid.uuid5(_NAMESPACE, page_id))


class QdrantBackend:
    """One Qdrant collection as a :class:`~pagesight.retrieval.store.base.StoreBackend`, plus tokens.

    Args:
        url: ``http(s)://host:port`` of a Qdrant server; give exactly one of ``url`` and ``path``.
        path: folder of a local-mode store (Qdrant's embedded engine, one process at a time).
        collection: the collection's name.
        api_key: the server's API key (default ``$QDRANT_API_KEY``).
    """

    name = "qdrant"

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | Path | None = None,
        collection: str = "pagesight",
        api_key: str | None = None,
    ) -> None:
        if (url is None) == (path is None):
            raise ConfigurationError("QdrantBackend takes exactly one of `url` and `path`")
        self._url = url
        self._path = Path(path).expanduser() if path is not None else None
        self._collection = collection
        self._api_key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY")
        self._client: Any = None
        self._pending: dict[str, np.ndarray] = {}  # tokens waiting for their record's upsert
        self._pending_meta: dict[str, Any] = {}  # metadata written before the collection exists

    # -- identity and places -------------------------------------------------------------------

    @property
    def location(self) -> str:
        where = (
            f"qdrant+path://{self._path}"
            if self._path is not None
            else f"qdrant://{urlsplit(str(self._url)).netloc}"
        )
        return f"{where} (collection {self._collection})"

    @property
    def folder(self) -> Path | None:
        """Local mode's folder (the journal and write lock go there); ``None`` for a server."""
        return self._path

    def local_dir(self, what: str) -> Path:
        if self._path is not None:
            return self._path / what
        from pagesight.retrieval.store.chroma import server_files_dir

        netloc = urlsplit(str(self._url)).netloc.replace(":", "-")
        return server_files_dir(what) / f"qdrant-{netloc}" / self._collection

    def arguments(self) -> str:
        where = f"path={str(self._path)!r}" if self._path is not None else f"url={self._url!r}"
        return f"{where}, collection={self._collection!r}"

    # -- connection ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self, busy: Callable[[], int | str | None] | None = None) -> None:
        if self._client is not None:
            return
        qc = _qdrant()
        with self.errors("connecting", busy):
            if self._path is not None:
                self._path.mkdir(parents=True, exist_ok=True)
                self._client = qc.QdrantClient(path=str(self._path / "qdrant"))
            else:
                self._client = qc.QdrantClient(url=self._url, api_key=self._api_key)

    def close(self) -> None:
        client, self._client = self._client, None
        self._pending.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _c(self) -> Any:
        self.connect()
        return self._client

    def _exists(self) -> bool:
        return bool(self._c().collection_exists(self._collection))

    def identity(self) -> str:
        meta = self.read_metadata()
        return str(meta.get("pagesight:collection_id", "none"))

    def max_batch_size(self) -> int:
        return 256

    # -- metadata --------------------------------------------------------------------------------

    def read_metadata(self, *, fresh: bool = True) -> dict[str, Any]:
        if not self._exists():
            return dict(self._pending_meta)
        info = self._c().get_collection(self._collection)
        return dict(info.config.metadata or {})

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        if not self._exists():  # the collection is made at the first upsert, when the sizes are known
            self._pending_meta = dict(metadata)
            return
        self._c().update_collection(self._collection, metadata=dict(metadata))

    def reset(self) -> None:
        if self._exists():
            self._c().delete_collection(self._collection)
        self._pending.clear()
        self._pending_meta = {}

    def _create(self, dim: int | None, token_dim: int | None, metadata: dict[str, Any] | None = None) -> None:
        from qdrant_client import models as m

        vectors: dict[str, Any] = {}
        if dim is not None:
            vectors[_SUMMARY] = m.VectorParams(size=dim, distance=m.Distance.COSINE)
        if token_dim is not None:
            vectors[_TOKENS] = m.VectorParams(
                size=token_dim,
                distance=m.Distance.DOT,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
                hnsw_config=m.HnswConfigDiff(m=0),  # reranking only: no graph to build
            )
        meta = {"pagesight:collection_id": uuid.uuid4().hex, **(metadata or {})}
        self._c().create_collection(self._collection, vectors_config=vectors, metadata=meta)

    def _vector_names(self) -> set[str]:
        cfg = self._c().get_collection(self._collection).config.params.vectors
        return set(cfg.keys()) if isinstance(cfg, dict) else set()

    # -- records ---------------------------------------------------------------------------------

    def count(self) -> int:
        if not self._exists():
            return 0
        return int(self._c().count(self._collection, exact=True).count)

    def stage_tokens(self, ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        """Keep token matrices for the next :meth:`upsert` of these ids (one point upsert each)."""
        for i, mat in zip(ids, matrices, strict=True):
            self._pending[i] = np.asarray(mat, np.float32)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        from qdrant_client import models as m

        vecs = np.asarray(vectors, np.float32)
        tokens = [self._pending.get(i) for i in ids]
        token_dim = next((t.shape[1] for t in tokens if t is not None), None)
        if not self._exists():
            self._create(vecs.shape[1], token_dim, self._pending_meta)
        elif token_dim is not None and _TOKENS not in self._vector_names():
            raise StoreError(f"store {self.location} was created without token vectors; use a new collection")
        points = []
        for i, v, doc, meta, tok in zip(ids, vecs, documents, metadatas, tokens, strict=True):
            vector: dict[str, Any] = {_SUMMARY: v.tolist()}
            if tok is not None:
                vector[_TOKENS] = tok.tolist()
            payload = {_ID: i, _DOC: doc, _META: dict(meta), **{f"m_{k}": val for k, val in meta.items()}}
            points.append(m.PointStruct(id=point_id(i), vector=vector, payload=payload))
        self._c().upsert(self._collection, points=points, wait=True)
        for i in ids:
            self._pending.pop(i, None)

    def _filter(self, where: Mapping[str, str] | None) -> Any:
        if not where:
            return None
        from qdrant_client import models as m

        return m.Filter(
            must=[m.FieldCondition(key=f"m_{k}", match=m.MatchValue(value=v)) for k, v in where.items()]
        )

    def query(
        self, vector: np.ndarray, k: int, where: Mapping[str, str] | None = None
    ) -> list[tuple[str, Any, Any, float]]:
        if not self._exists():
            return []
        res = self._c().query_points(
            self._collection,
            query=np.asarray(vector, np.float32).reshape(-1).tolist(),
            using=_SUMMARY,
            limit=k,
            query_filter=self._filter(where),
            with_payload=True,
        )
        return [self._scored(p) for p in res.points]

    def query_tokens(
        self,
        query: np.ndarray,
        k: int,
        where: Mapping[str, str] | None = None,
        *,
        summary: np.ndarray | None = None,
        candidates: int = 100,
    ) -> list[tuple[str, Any, Any, float]]:
        """MaxSim search in Qdrant: prefetch ``candidates`` by ``summary`` (if given), rerank by tokens.

        Without ``summary`` every page is scored (exact, exhaustive).
        """
        if not self._exists():
            return []
        from qdrant_client import models as m

        flt = self._filter(where)
        prefetch = None
        if summary is not None:
            prefetch = m.Prefetch(
                query=np.asarray(summary, np.float32).reshape(-1).tolist(),
                using=_SUMMARY,
                limit=candidates,
                filter=flt,
            )
        res = self._c().query_points(
            self._collection,
            prefetch=prefetch,
            query=np.asarray(query, np.float32).tolist(),
            using=_TOKENS,
            limit=k,
            query_filter=flt,
            with_payload=True,
            # local mode always scores exactly (and warns about search_params)
            search_params=m.SearchParams(exact=True) if summary is None and self._path is None else None,
        )
        return [self._scored(p) for p in res.points]

    @staticmethod
    def _scored(p: Any) -> tuple[str, Any, Any, float]:
        payload = p.payload or {}
        return (str(payload.get(_ID)), payload.get(_DOC, ""), payload.get(_META), float(p.score))

    def get(
        self, ids: Sequence[str], *, include: Sequence[str] = ("documents", "metadatas")
    ) -> list[tuple[str, Any, Any]]:
        if not ids or not self._exists():
            return []
        found = self._c().retrieve(self._collection, ids=[point_id(i) for i in ids], with_payload=True)
        by_id = {str((r.payload or {}).get(_ID)): r for r in found}
        return [self._row(by_id[i], include) for i in ids if i in by_id]

    def get_tokens(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Token matrices of ``ids`` that have them."""
        if not ids or not self._exists():
            return {}
        found = self._c().retrieve(
            self._collection, ids=[point_id(i) for i in ids], with_payload=[_ID], with_vectors=[_TOKENS]
        )
        out = {}
        for r in found:
            vec = (r.vector or {}).get(_TOKENS) if isinstance(r.vector, dict) else None
            if vec:
                out[str((r.payload or {}).get(_ID))] = np.asarray(vec, np.float32)
        return out

    @staticmethod
    def _row(r: Any, include: Sequence[str]) -> tuple[str, Any, Any]:
        payload = r.payload or {}
        return (
            str(payload.get(_ID)),
            payload.get(_DOC, "") if "documents" in include else "",
            payload.get(_META, {}) if "metadatas" in include else {},
        )

    def scan(
        self,
        where: Mapping[str, str] | None = None,
        *,
        limit: int,
        offset: int = 0,
        include: Sequence[str] = ("documents", "metadatas"),
    ) -> list[tuple[str, Any, Any]]:
        if not self._exists():
            return []
        rows: list[tuple[str, Any, Any]] = []
        cursor = None
        skip = offset
        while len(rows) < limit:
            batch, cursor = self._c().scroll(
                self._collection,
                scroll_filter=self._filter(where),
                limit=min(1024, skip + limit - len(rows)),
                offset=cursor,
                with_payload=True,
            )
            for r in batch:
                if skip > 0:
                    skip -= 1
                    continue
                rows.append(self._row(r, include))
            if cursor is None:
                break
        return rows[:limit]

    def ids_with_tokens(self) -> list[str]:
        """Page ids whose point holds token vectors."""
        if not self._exists() or _TOKENS not in self._vector_names():
            return []
        from qdrant_client import models as m

        out: list[str] = []
        cursor = None
        while True:
            batch, cursor = self._c().scroll(
                self._collection,
                scroll_filter=m.Filter(must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key=_ID))]),
                limit=1024,
                offset=cursor,
                with_payload=[_ID],
                with_vectors=[_TOKENS],
            )
            out.extend(
                str((r.payload or {}).get(_ID))
                for r in batch
                if isinstance(r.vector, dict) and r.vector.get(_TOKENS)
            )
            if cursor is None:
                return sorted(out)

    def delete(self, ids: Sequence[str]) -> None:
        if not ids or not self._exists():
            return
        from qdrant_client import models as m

        self._c().delete(
            self._collection, points_selector=m.PointIdsList(points=[point_id(i) for i in ids]), wait=True
        )

    @contextlib.contextmanager
    def errors(self, action: str, busy: Callable[[], int | str | None] | None = None) -> Iterator[None]:
        try:
            yield
        except PagesightError:
            raise
        except (OSError, RuntimeError, ValueError) as e:
            raise StoreError(f"store {self.location}: {action} failed: {e}") from e
        except Exception as e:
            if type(e).__module__.startswith(("qdrant_client", "httpx", "grpc", "portalocker")):
                raise StoreError(f"store {self.location}: {action} failed: {e}") from e
            raise

    def tokens(self) -> QdrantTokens:
        """The token side of a late-interaction store on this collection."""
        return QdrantTokens(self)


class QdrantTokens:
    """The part of :class:`~pagesight.retrieval.store.tokens.TokenStore` a MultiVectorStore uses,
    on the ``tokens`` vectors of the backend's points.

    ``put`` only stages the matrices: they are written with their records, in the same point upsert.
    """

    def __init__(self, backend: QdrantBackend) -> None:
        self._backend = backend
        self.folder = backend.local_dir("tokens")
        self.dtype = "float32"

    def put(self, ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None:
        self._backend.stage_tokens(ids, matrices)

    def delete(self, ids: Sequence[str]) -> int:
        for i in ids:
            self._backend._pending.pop(i, None)
        return 0  # the points (and their tokens) go with the records

    def ids(self) -> list[str]:
        return self._backend.ids_with_tokens()

    def present(self, ids: Sequence[str]) -> set[str]:
        return set(self._backend.get_tokens(ids)) | {i for i in ids if i in self._backend._pending}

    def readable(self, ids: Sequence[str]) -> set[str]:
        return set(self._backend.get_tokens(ids))

    def get(self, ids: Sequence[str]) -> list[np.ndarray]:
        found = self._backend.get_tokens(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise StoreError(f"store {self._backend.location} holds no tokens for {missing[:3]}")
        return [found[i] for i in ids]

    def packed(self, ids: Sequence[str] | None = None) -> tuple[list[str], Any]:
        from pagesight.retrieval.maxsim import pack

        order = list(ids) if ids is not None else self.ids()
        return order, pack(self.get(order))

    def iter_packed(self, ids: Sequence[str] | None = None) -> Iterator[tuple[list[str], Any]]:
        order = list(ids) if ids is not None else self.ids()
        for s in range(0, len(order), 1024):
            yield self.packed(order[s : s + 1024])

    def count(self) -> int:
        return len(self.ids())

    def bytes_per_page(self) -> float:
        return 0.0

    def stats(self) -> Any:
        from pagesight.retrieval.store.tokens import TokenStoreStats

        ids = self.ids()
        return TokenStoreStats(len(ids), 0, 0, 0)  # Qdrant manages its own space: nothing to compact

    def compact(self) -> int:
        return 0

    def set_owner(self, owner: str) -> None:
        return None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def close(self) -> None:
        return None


def open_qdrant(
    location: str,
    *,
    collection: str = "pagesight",
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> QdrantBackend:
    """``qdrant://host:port[/collection]`` (a server; ``qdrants://`` for TLS) or ``qdrant+path://folder``."""
    if headers or tenant or database:
        raise ConfigurationError(
            "Qdrant stores take no Chroma headers, tenant or database; use $QDRANT_API_KEY"
        )
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "qdrant+path":
        folder = location.split("://", 1)[1]
        if not folder:
            raise ConfigurationError(f"{location}: give a folder, e.g. qdrant+path://index-qdrant")
        return QdrantBackend(path=folder, collection=collection)
    if not parts.hostname:
        raise ConfigurationError(f"{location}: give a host, e.g. qdrant://localhost:6333/pagesight")
    name = parts.path.strip("/") or collection
    http = "https" if scheme == "qdrants" else "http"
    return QdrantBackend(url=f"{http}://{parts.hostname}:{parts.port or 6333}", collection=name)

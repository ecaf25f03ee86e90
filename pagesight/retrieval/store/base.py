"""What a store is made of: the backend protocol under the page policy, and the store protocol above it.

Three protocols:

- :class:`StoreBackend`: one vector collection with per-record text and metadata (what
  :mod:`~pagesight.retrieval.store.chroma` implements for Chroma). Small on purpose: upsert, query,
  get, delete, scan, count, collection metadata, the batch limit, connect/close and error
  translation. It knows nothing of pages, images, journals or locks.
- :class:`MultiVectorBackend`: the optional capability of a backend that stores and searches token
  matrices itself (late interaction). No backend has it yet; without it
  :class:`~pagesight.retrieval.store.MultiVectorStore` keeps the tokens in its own token store.
- :class:`Store`: what ingest, search, the web app and the integrations call on a store, whatever
  its class: :class:`~pagesight.retrieval.store.PageStore` and
  :class:`~pagesight.retrieval.store.MultiVectorStore` both satisfy it. ``store.multivector`` says
  which vectors it takes (one per page, or a token matrix per page), so no caller needs
  ``isinstance`` on a store class.

Adding a backend: write one module with a class that satisfies :class:`StoreBackend` and add its
URL scheme to ``OPENERS`` in :mod:`~pagesight.retrieval.store.open`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pagesight.retrieval.store.health import StoreHealth
    from pagesight.types import EmbedderInfo, Hit, SourceInfo

__all__ = ["MultiVectorBackend", "Row", "ScoredRow", "Store", "StoreBackend"]

Row = tuple[str, Any, Any]
"""``(id, document, metadata)`` of one record; document ``""`` and metadata ``{}`` when not asked for."""

ScoredRow = tuple[str, Any, Any, float]
"""``(id, document, metadata, cosine similarity)``; metadata ``None`` for a record deleted meanwhile."""


@runtime_checkable
class StoreBackend(Protocol):
    """One collection of records ``(id, vector, document, metadata)`` with cosine search.

    Metadata values are str, int, float or bool. ``where`` filters are ``{field: value}``
    equality on metadata. Every call may raise the backend's own exceptions: callers wrap them in
    :meth:`errors`, which turns them into :class:`~pagesight.errors.StoreError`. The constructor
    opens nothing.
    """

    name: str
    """Short backend name (``"chroma"``)."""

    @property
    def location(self) -> str:
        """Where the records live, as messages name it (no secrets)."""
        ...

    @property
    def folder(self) -> Path | None:
        """A local folder the backend's data lives in (journal and write lock go there), else ``None``."""
        ...

    def local_dir(self, what: str) -> Path:
        """The default folder for this store's local files of ``what`` (``"images"``, ``"tokens"``)."""
        ...

    def arguments(self) -> str:
        """Constructor arguments as a store's ``repr`` shows them."""
        ...

    @property
    def connected(self) -> bool: ...

    def connect(self, busy: Callable[[], int | str | None] | None = None) -> None:
        """Open the connection and create the collection if missing."""
        ...

    def close(self) -> None: ...

    def identity(self) -> str:
        """An id of the collection that changes when it is replaced (a new database)."""
        ...

    def max_batch_size(self) -> int:
        """Records one call accepts."""
        ...

    def read_metadata(self, *, fresh: bool = True) -> dict[str, Any]: ...

    def write_metadata(self, metadata: Mapping[str, Any]) -> None: ...

    def reset(self) -> None:
        """Drop every record and the collection metadata."""
        ...

    def count(self) -> int: ...

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None: ...

    def query(
        self, vector: np.ndarray, k: int, where: Mapping[str, str] | None = None
    ) -> list[ScoredRow]: ...

    def get(
        self, ids: Sequence[str], *, include: Sequence[str] = ("documents", "metadatas")
    ) -> list[Row]: ...

    def scan(
        self,
        where: Mapping[str, str] | None = None,
        *,
        limit: int,
        offset: int = 0,
        include: Sequence[str] = ("documents", "metadatas"),
    ) -> list[Row]: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def errors(
        self, action: str, busy: Callable[[], int | str | None] | None = None
    ) -> AbstractContextManager[None]:
        """Translate the backend's exceptions raised in the block into StoreError naming ``action``."""
        ...


@runtime_checkable
class MultiVectorBackend(StoreBackend, Protocol):
    """A backend that stores a token matrix per record and scores queries by MaxSim itself."""

    def upsert_tokens(self, ids: Sequence[str], matrices: Sequence[np.ndarray]) -> None: ...

    def query_tokens(
        self, query: np.ndarray, k: int, where: Mapping[str, str] | None = None
    ) -> list[ScoredRow]: ...


class Store(Protocol):
    """What callers use of a page store, whichever kind of vectors it holds.

    ``multivector`` is ``False`` for a store of one vector per page
    (:class:`~pagesight.retrieval.store.PageStore`: dense text or dense vision-language
    embedders) and ``True`` for token matrices
    (:class:`~pagesight.retrieval.store.MultiVectorStore`: late interaction).
    """

    multivector: bool

    @property
    def location(self) -> str: ...

    @property
    def image_dir(self) -> Path: ...

    @property
    def embedder(self) -> EmbedderInfo | None: ...

    def add_source(self, pages: Sequence[Any], vectors: Any, /, *, embedder: EmbedderInfo) -> None: ...

    def search(
        self, query: Any, k: int = 10, /, *, embedder: EmbedderInfo, source: str | None = None
    ) -> list[Hit]: ...

    def get(self, ids: Sequence[str]) -> list[Hit]: ...

    def pages(self, source: str | None = None) -> list[Hit]: ...

    def sources(self) -> list[SourceInfo]: ...

    def source_hash(self, source: str) -> str | None: ...

    def source_info(self, source: str) -> SourceInfo | None: ...

    def source_with_hash(self, content_hash: str) -> str | None: ...

    def delete_source(self, source: str) -> int: ...

    def count(self) -> int: ...

    def check(self) -> StoreHealth: ...

    def repair(self) -> StoreHealth: ...

    def close(self) -> None: ...

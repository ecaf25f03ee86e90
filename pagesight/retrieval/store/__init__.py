"""Page stores: the page policy over a backend (Chroma first), late interaction on top, opened by location.

Install ``pip install "pagesight[chroma]"``, then::

    from pagesight.retrieval.store import PageStore, open_store

    store = open_store("http://chroma:8000")       # PageStore or MultiVectorStore, by what it holds
    store.multivector                              # True: token matrices (late interaction)
    PageStore("index/")                            # a new embedded store (see pages.py for its use)

Modules: ``base`` (the protocols), ``pages`` (:class:`PageStore`, the page policy), ``chroma``
(the Chroma backend), ``late`` (:class:`MultiVectorStore`), ``tokens`` (the token matrices),
``open`` (:func:`open_store` by URL scheme), ``health`` (check reports); ``_images``, ``_journal``
and ``_writelock`` hold the file-level crash safety the policy uses.
"""

from __future__ import annotations

from pagesight.retrieval.store.base import MultiVectorBackend, Store, StoreBackend
from pagesight.retrieval.store.chroma import ChromaBackend
from pagesight.retrieval.store.health import PageRef, StoreHealth
from pagesight.retrieval.store.late import MultiVectorStore, ReconcileReport
from pagesight.retrieval.store.open import default_image_dir, is_store_url, open_multivector_store, open_store
from pagesight.retrieval.store.pages import PageStore
from pagesight.retrieval.store.tokens import TokenStore
from pagesight.types import Hit, SourceInfo

__all__ = [
    "Hit",
    "SourceInfo",
    "PageStore",
    "MultiVectorStore",
    "ReconcileReport",
    "TokenStore",
    "ChromaBackend",
    "Store",
    "StoreBackend",
    "MultiVectorBackend",
    "StoreHealth",
    "PageRef",
    "open_store",
    "open_multivector_store",
    "is_store_url",
    "default_image_dir",
]

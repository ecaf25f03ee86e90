"""Open a store the way the CLI, the chains and the web app all do, and the encoder that reads it.

::

    store = open_store("index/")                  # PageStore, or MultiVectorStore for token vectors
    encoder = store_encoder(store)                 # the embedder recorded in the store, not loaded yet
    searcher = PageSearcher(store, encoder)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.errors import ConfigurationError

if TYPE_CHECKING:
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

__all__ = ["is_store_url", "open_store", "open_multivector_store", "store_encoder"]


def is_store_url(location: str | Path) -> bool:
    """Whether ``location`` names a Chroma server (``http://host:port``) rather than a folder."""
    return str(location).startswith(("http://", "https://"))


def open_store(location: str | Path, *, must_exist: bool = True) -> PageStore | MultiVectorStore:
    """Open the store at ``location`` (folder or Chroma server URL).

    Returns a :class:`~pagesight.retrieval.multivector.MultiVectorStore` when the store holds
    token vectors (late interaction), else a :class:`~pagesight.retrieval.store.PageStore`.

    Raises:
        ConfigurationError: ``must_exist`` and there is no store folder at ``location``.
    """
    from pagesight.retrieval.store import PageStore

    where = str(location)
    url = is_store_url(where)
    if not url and must_exist and not Path(where).is_dir():
        raise ConfigurationError(
            f"no store at {where}; create one with: pagesight index SOURCES... --store {where}"
        )
    store = PageStore(url=where) if url else PageStore(where)
    info = store.embedder
    if info is not None and info.kind == "late-interaction":
        return open_multivector_store(where)
    return store


def open_multivector_store(location: str | Path, **options: Any) -> MultiVectorStore:
    """Open (or create) a late-interaction store at a folder or Chroma server URL."""
    from pagesight.retrieval.multivector import MultiVectorStore

    where = str(location)
    if is_store_url(where):
        return MultiVectorStore(url=where, **options)
    return MultiVectorStore(where, **options)


def store_encoder(store: PageStore | MultiVectorStore, *, trust_remote_code: bool = False) -> Any:
    """The encoder for the embedder the store records (constructed, weights not loaded).

    Raises:
        ConfigurationError: the store is empty (no embedder recorded yet).
    """
    from pagesight.profiles import encoder_for

    info = store.embedder
    if info is None:
        where = getattr(store, "location", None) or "this store"
        raise ConfigurationError(
            f"store {where} is empty; index documents first: pagesight index SOURCES... --store {where}"
        )
    return encoder_for(info, trust_remote_code=trust_remote_code)

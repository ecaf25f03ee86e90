"""Open a store the way the CLI, the chains and the web app all do, and the encoder that reads it.

::

    store = open_store("index/")                  # PageStore, or MultiVectorStore for token vectors
    encoder = store_encoder(store)                 # the embedder recorded in the store, not loaded yet
    searcher = PageSearcher(store, encoder)

Opening lives in :mod:`pagesight.retrieval.store.open` (by URL scheme) and the Chroma server
options in :mod:`pagesight.retrieval.store.chroma`; they are re-exported here. A Chroma server store
(``http://host:port``) can take headers, a tenant and a database::

    open_store("http://chroma:8000", headers={"Authorization": "Bearer TOKEN"}, database="team")

Unset, they come from the environment: ``$PAGESIGHT_CHROMA_HEADERS`` (``Name: value`` lines) and
``$CHROMA_TENANT`` / ``$CHROMA_DATABASE`` (the names ``chromadb.CloudClient`` reads); Chroma's own
``CHROMA_CLIENT_AUTH_PROVIDER`` / ``CHROMA_CLIENT_AUTH_CREDENTIALS`` settings also apply.
"""

from __future__ import annotations

from typing import Any

from pagesight.errors import ConfigurationError
from pagesight.retrieval.store.base import Store
from pagesight.retrieval.store.chroma import HEADERS_ENV, parse_headers, server_options
from pagesight.retrieval.store.open import is_store_url, open_multivector_store, open_store

__all__ = [
    "HEADERS_ENV",
    "is_store_url",
    "open_store",
    "open_multivector_store",
    "parse_headers",
    "server_options",
    "store_encoder",
]


def store_encoder(store: Store, *, trust_remote_code: bool = False) -> Any:
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

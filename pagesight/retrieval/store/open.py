"""Open a store by its location: a folder, a Chroma server URL, or another backend's URL scheme.

::

    store = open_store("index/")                  # PageStore, or MultiVectorStore for token vectors
    store = open_store("http://chroma:8000", headers={"Authorization": "Bearer TOKEN"}, database="team")
    late = open_multivector_store("index/", storage="int8")

``OPENERS`` maps a location's URL scheme to the function that builds its backend (``""``: a folder
path, an embedded Chroma database). A new backend is its module plus one entry here, e.g.
``"qdrant": open_qdrant``; a scheme without an entry raises :class:`ConfigurationError` naming the
known ones. Server options left unset come from the environment (see
:func:`~pagesight.retrieval.store.chroma.server_options`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pagesight.errors import ConfigurationError
from pagesight.retrieval.store.base import StoreBackend
from pagesight.retrieval.store.chroma import ChromaBackend, server_options
from pagesight.retrieval.store.late import MultiVectorStore
from pagesight.retrieval.store.pages import PageStore
from pagesight.retrieval.store.qdrant import open_qdrant

__all__ = [
    "OPENERS",
    "default_image_dir",
    "is_store_url",
    "open_backend",
    "open_multivector_store",
    "open_store",
    "scheme_of",
]

BackendOpener = Callable[..., StoreBackend]
"""``opener(location, *, collection, headers, tenant, database) -> StoreBackend`` (opens nothing)."""


def _chroma(
    location: str,
    *,
    collection: str = "pagesight",
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> StoreBackend:
    """A folder: embedded Chroma (refusing server options); a URL: a Chroma server, env options added."""
    if scheme_of(location):
        return ChromaBackend(url=location, collection=collection, **server_options(headers, tenant, database))
    return ChromaBackend(location, headers=headers, tenant=tenant, database=database, collection=collection)


OPENERS: dict[str, BackendOpener] = {
    "": _chroma,  # a folder path: embedded Chroma
    "http": _chroma,  # a Chroma server
    "https": _chroma,
    "qdrant": open_qdrant,  # a Qdrant server: qdrant://host:port/collection
    "qdrants": open_qdrant,  # the same over TLS
    "qdrant+path": open_qdrant,  # Qdrant's local mode in a folder
}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(location: str | Path) -> str:
    """The URL scheme of ``location`` (``"http"``), lower case; ``""`` for a folder path."""
    found = _SCHEME.match(str(location))
    return found.group(1).lower() if found else ""


def is_store_url(location: str | Path) -> bool:
    """Whether ``location`` names a server (``scheme://...``) rather than a folder."""
    return scheme_of(location) != ""


def open_backend(location: str | Path, **options: Any) -> StoreBackend:
    """The backend for ``location`` by its scheme (constructed, not connected).

    Raises:
        ConfigurationError: a scheme no backend is registered for (the message lists the known
            ones), or options the backend refuses.
    """
    scheme = scheme_of(location)
    opener = OPENERS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in OPENERS if s)
        raise ConfigurationError(
            f"no store backend for {scheme}:// locations; give a folder path or a URL starting with {known}"
        )
    return opener(str(location), **options)


def default_image_dir(location: str | Path) -> Path:
    """Where a store at ``location`` keeps its page images by default (opens nothing)."""
    return open_backend(location).local_dir("images")


def open_store(
    location: str | Path,
    *,
    must_exist: bool = True,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> PageStore | MultiVectorStore:
    """Open the store at ``location`` (folder, Chroma server URL, or a registered scheme).

    Returns a :class:`~pagesight.retrieval.store.MultiVectorStore` when the store holds token
    vectors (late interaction), else a :class:`~pagesight.retrieval.store.PageStore`.

    Args:
        location: a store folder, or ``http(s)://host:port`` of a Chroma server.
        must_exist: refuse a folder that does not exist yet.
        headers: server stores: HTTP headers for every request (see ``server_options``).
        tenant: server stores: the tenant.
        database: server stores: the database.

    Raises:
        ConfigurationError: ``must_exist`` and there is no store folder at ``location``, server
            options for a folder, or a scheme no backend is registered for.
    """
    where = str(location)
    scheme = scheme_of(where)
    if scheme not in OPENERS:
        open_backend(where)  # raises, naming the known schemes
    if not scheme and must_exist and not Path(where).is_dir():
        raise ConfigurationError(
            f"no store at {where}; create one with: pagesight index SOURCES... --store {where}"
        )
    backend = open_backend(where, headers=headers, tenant=tenant, database=database)
    store = PageStore(backend=backend)
    info = store.embedder
    if info is not None and info.kind == "late-interaction":
        return MultiVectorStore(backend=backend)
    return store


def open_multivector_store(
    location: str | Path,
    *,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
    **options: Any,
) -> MultiVectorStore:
    """Open (or create) a late-interaction store at a folder, Chroma server URL or registered scheme.

    ``headers``, ``tenant`` and ``database`` are as :func:`open_store`'s; ``collection`` and the
    other ``options`` go to :class:`~pagesight.retrieval.store.MultiVectorStore`.
    """
    collection = options.pop("collection", "pagesight")
    backend = open_backend(location, headers=headers, tenant=tenant, database=database, collection=collection)
    return MultiVectorStore(backend=backend, **options)

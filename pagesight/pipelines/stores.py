"""Open a store the way the CLI, the chains and the web app all do, and the encoder that reads it.

::

    store = open_store("index/")                  # PageStore, or MultiVectorStore for token vectors
    encoder = store_encoder(store)                 # the embedder recorded in the store, not loaded yet
    searcher = PageSearcher(store, encoder)

A Chroma server store (``http://host:port``) can take headers, a tenant and a database::

    open_store("http://chroma:8000", headers={"Authorization": "Bearer TOKEN"}, database="team")

Unset, they come from the environment: ``$PAGESIGHT_CHROMA_HEADERS`` (``Name: value`` lines) and
``$CHROMA_TENANT`` / ``$CHROMA_DATABASE`` (the names ``chromadb.CloudClient`` reads); Chroma's own
``CHROMA_CLIENT_AUTH_PROVIDER`` / ``CHROMA_CLIENT_AUTH_CREDENTIALS`` settings also apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.errors import ConfigurationError

if TYPE_CHECKING:
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

__all__ = [
    "HEADERS_ENV",
    "is_store_url",
    "open_store",
    "open_multivector_store",
    "parse_headers",
    "server_options",
    "store_encoder",
]

HEADERS_ENV = "PAGESIGHT_CHROMA_HEADERS"


def is_store_url(location: str | Path) -> bool:
    """Whether ``location`` names a Chroma server (``http://host:port``) rather than a folder."""
    return str(location).startswith(("http://", "https://"))


def parse_headers(lines: Sequence[str], what: str = "--chroma-header") -> dict[str, str]:
    """``{"Name": "value"}`` from ``"Name: value"`` entries (the value may contain ``:``).

    Raises:
        ConfigurationError: an entry without a name or ``:``; the message names ``what`` and the
            header, never the value (it is usually a secret).
    """
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigurationError(f"{what}: expected 'Name: value', e.g. 'Authorization: Bearer TOKEN'")
        headers[name.strip()] = value.strip()
    return headers


def server_options(
    headers: Mapping[str, str] | None = None, tenant: str | None = None, database: str | None = None
) -> dict[str, Any]:
    """The ``headers``, ``tenant`` and ``database`` for a server store, the environment filling the gaps.

    ``$PAGESIGHT_CHROMA_HEADERS`` holds ``Name: value`` lines (``headers`` given here win over
    them, name by name); ``$CHROMA_TENANT`` and ``$CHROMA_DATABASE`` name the tenant and database.
    """
    env = os.environ.get(HEADERS_ENV, "")
    sent = parse_headers([line for line in env.splitlines() if line.strip()], f"${HEADERS_ENV}")
    sent.update(headers or {})
    return {
        "headers": sent or None,
        "tenant": tenant or os.environ.get("CHROMA_TENANT") or None,
        "database": database or os.environ.get("CHROMA_DATABASE") or None,
    }


def open_store(
    location: str | Path,
    *,
    must_exist: bool = True,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> PageStore | MultiVectorStore:
    """Open the store at ``location`` (folder or Chroma server URL).

    Returns a :class:`~pagesight.retrieval.multivector.MultiVectorStore` when the store holds
    token vectors (late interaction), else a :class:`~pagesight.retrieval.store.PageStore`.

    Args:
        location: a store folder, or ``http(s)://host:port`` of a Chroma server.
        must_exist: refuse a folder that does not exist yet.
        headers: server stores: HTTP headers for every request (see :func:`server_options`).
        tenant: server stores: the tenant.
        database: server stores: the database.

    Raises:
        ConfigurationError: ``must_exist`` and there is no store folder at ``location``, or
            server options for a folder.
    """
    from pagesight.retrieval.store import PageStore

    where = str(location)
    url = is_store_url(where)
    if not url and must_exist and not Path(where).is_dir():
        raise ConfigurationError(
            f"no store at {where}; create one with: pagesight index SOURCES... --store {where}"
        )
    server: dict[str, Any] = {"headers": headers, "tenant": tenant, "database": database}
    if url:
        server = server_options(headers, tenant, database)
        store = PageStore(url=where, **server)
    else:
        store = PageStore(where, **server)  # refuses server options for a folder
    info = store.embedder
    if info is not None and info.kind == "late-interaction":
        return open_multivector_store(where, **server)
    return store


def open_multivector_store(
    location: str | Path,
    *,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
    **options: Any,
) -> MultiVectorStore:
    """Open (or create) a late-interaction store at a folder or Chroma server URL.

    ``headers``, ``tenant`` and ``database`` are as :func:`open_store`'s; ``options`` go to
    :class:`~pagesight.retrieval.multivector.MultiVectorStore`.
    """
    from pagesight.retrieval.multivector import MultiVectorStore

    where = str(location)
    if is_store_url(where):
        return MultiVectorStore(url=where, **server_options(headers, tenant, database), **options)
    return MultiVectorStore(where, headers=headers, tenant=tenant, database=database, **options)


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

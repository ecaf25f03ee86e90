"""The Chroma backend: one collection (cosine space) in an embedded folder or on a Chroma server.

The only module of the stores that imports ``chromadb`` (on first use, never at import)::

    backend = ChromaBackend("index/")                               # embedded, created if missing
    backend = ChromaBackend(url="http://chroma:8000", headers={"Authorization": "Bearer TOKEN"})
    PageStore(backend=backend)                                      # the page policy on top

It translates Chroma's and its transport's exceptions into :class:`~pagesight.errors.StoreError`
(:meth:`ChromaBackend.errors`), refuses a database file that is not SQLite before Chroma opens it,
and reads the server options a CLI or the environment give (:func:`server_options`).
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pagesight._deps import require
from pagesight.errors import (
    ConfigurationError,
    DamagedStoreError,
    PagesightError,
    StoreAuthenticationError,
    StoreError,
)
from pagesight.retrieval.store._remote_images import is_url
from pagesight.retrieval.store.base import Row, ScoredRow
from pagesight.retrieval.store.health import StoreHealth

__all__ = ["HEADERS_ENV", "ChromaBackend", "parse_headers", "server_options"]

logger = logging.getLogger(__name__)

HEADERS_ENV = "PAGESIGHT_CHROMA_HEADERS"

# Chroma's HNSW defaults search with ef = max(10, k): measured on 20,000 page vectors (bench/.cache of
# bench/two_stage.py), the top 100 it returned held 94.2% of the exact top 100; with ef_search=200
# it held 99.0% at the same latency (0.8 ms per query). Candidate search needs that recall.
_HNSW = {"space": "cosine", "ef_search": 200, "ef_construction": 200}

Busy = Callable[[], "int | str | None"]


class ChromaBackend:
    """A Chroma collection as a :class:`~pagesight.retrieval.store.base.StoreBackend`.

    The constructor checks its arguments and opens nothing; :meth:`connect` creates the client and
    the collection. Not thread-safe on its own: :class:`~pagesight.retrieval.store.PageStore`
    serializes the calls.

    Args:
        path: folder of an embedded Chroma database (created on connect if missing).
        url: ``http(s)://host:port`` of a Chroma server; give exactly one of ``path`` and ``url``.
            ``http://user:password@host:port`` sends HTTP Basic auth (the password is never shown).
        headers: HTTP headers sent with every request to the server.
        tenant: the server's tenant (default: Chroma's ``default_tenant``).
        database: the tenant's database (default: Chroma's ``default_database``).
        collection: the Chroma collection's name.
        client_settings: ``chromadb.config.Settings`` for the client. By default the settings of a
            Chroma client this process already opened on the same folder (a stock
            ``langchain_chroma.Chroma`` made first), else Chroma's defaults with telemetry off
            (through ``$ANONYMIZED_TELEMETRY``, unless it is set, so that stock clients made later
            in this process get equal settings: Chroma refuses a second client of one folder whose
            settings differ).

    Raises:
        ConfigurationError: neither or both of ``path`` and ``url``, a malformed ``url``, a malformed
            header, tenant or database name, or server options without ``url``.
    """

    name = "chroma"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        tenant: str | None = None,
        database: str | None = None,
        collection: str = "pagesight",
        client_settings: Any = None,
    ) -> None:
        if (path is None) == (url is None):
            raise ConfigurationError("give exactly one of `path` (a folder) or `url` (a Chroma server)")
        if url is None and (headers or tenant is not None or database is not None):
            raise ConfigurationError("`headers`, `tenant` and `database` apply to a Chroma server `url`")
        self._path = Path(path).expanduser() if path is not None else None
        self._url = url
        self._server: _Server | None = None
        if url is not None:
            self._server = _server_options(url, headers, tenant, database)
            self._url = self._server.url  # without a user:password part
        self._collection_name = collection
        self._client: Any = None
        self._collection: Any = None
        self._batch_limit: int | None = None
        self._client_settings = client_settings
        # A backend dropped without close() still releases its client: Chroma keeps each embedded
        # database open (files, threads) in a process-wide cache until its last client closes.
        self._open_clients: list[Any] = []
        weakref.finalize(self, _close_clients, self._open_clients)

    # -- where -------------------------------------------------------------------------------------

    @property
    def folder(self) -> Path | None:
        """The embedded database's folder (journal and write lock live there); ``None`` for a server."""
        return self._path

    @property
    def location(self) -> str:
        """The folder or server URL and collection, as error messages name it."""
        where = str(self._path) if self._path is not None else str(self._url)
        server = self._server
        if server is not None and (server.tenant is not None or server.database is not None):
            tenant, database = server.tenant or "default_tenant", server.database or "default_database"
            where += f" (tenant {tenant}, database {database})"
        if self._collection_name != "pagesight":
            where += f" (collection {self._collection_name})"
        return where

    def local_dir(self, what: str) -> Path:
        """Where files of ``what`` (``"images"``, ``"tokens"``) live on this machine by default.

        ``<path>/<what>`` for an embedded store; for a server store
        ``$XDG_CACHE_HOME/pagesight/<what>/<host>-<port>[/<tenant>/<database>]/<collection>``, or,
        for images with ``$PAGESIGHT_IMAGE_DIR`` set (a folder every machine mounts),
        ``$PAGESIGHT_IMAGE_DIR/<host>-<port>[/<tenant>/<database>]/<collection>``.
        """
        if self._path is not None:
            return self._path / what
        assert self._server is not None  # set whenever url is given
        return server_files_dir(what) / self._server.folder / self._collection_name

    def arguments(self) -> str:
        """The constructor arguments as ``repr`` shows them (never a password)."""
        if self._path is not None:
            return f"{str(self._path)!r}, collection={self._collection_name!r}"
        return f"url={self._url!r}, collection={self._collection_name!r}"

    # -- connection --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` has run since the last :meth:`close`."""
        return self._collection is not None

    def connect(self, busy: Busy | None = None) -> None:
        """Create the client and get or create the collection.

        Raises:
            DamagedStoreError: an embedded database that is not a readable SQLite file.
            StoreError: Chroma failed (see :meth:`errors`).
        """
        chromadb = require("chromadb", "chroma")

        settings = self.client_settings()
        self._check_database_file()
        with self._damaged_database(), self.errors("opening the store", busy):
            if self._path is not None:
                self._path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            else:
                assert self._server is not None
                client = self._server.client(chromadb, settings)
            self._client = client
            self._open_clients.append(client)
            self._collection = self._get_or_create(client)

    def client_settings(self) -> Any:
        """The ``chromadb.config.Settings`` the client is made with (a copy; see the class docstring)."""
        from chromadb.config import Settings

        if self._client_settings is not None:
            return self._client_settings.model_copy()  # PersistentClient writes into the object
        if self._path is not None:
            existing = _settings_in_use(str(self._path))
            if existing is not None:
                return existing.model_copy()
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        return Settings()

    def close(self) -> None:
        """Release the client; :meth:`connect` opens it again."""
        client, self._client, self._collection = self._client, None, None
        self._batch_limit = None
        if client is not None:
            if client in self._open_clients:
                self._open_clients.remove(client)
            try:
                client.close()
            except Exception as e:  # closing must not hide the caller's own error
                logger.debug("closing the Chroma client of %s failed: %s", self.location, e)

    def collection(self) -> Any:
        """The ``chromadb`` collection (connecting first if needed)."""
        if self._collection is None:
            self.connect()
        return self._collection

    @property
    def client(self) -> Any:
        """The ``chromadb`` client; ``None`` until connected."""
        return self._client

    def identity(self) -> str:
        """The collection's id (a new one when the database was replaced)."""
        return str(self.collection().id)

    def max_batch_size(self) -> int:
        """Records per call the client accepts (asked once per connection)."""
        self.collection()
        if self._batch_limit is None:
            self._batch_limit = int(self._client.get_max_batch_size())
        return self._batch_limit

    # -- collection metadata -----------------------------------------------------------------------

    def read_metadata(self, *, fresh: bool = True) -> dict[str, Any]:
        """The collection's metadata; ``fresh`` asks the database again (another handle may have
        written it, or deleted and created the collection again: the handle then follows)."""
        col = self.collection()
        if not fresh:
            return dict(col.metadata or {})
        current = self._get_or_create(self._client)
        if current.id != col.id:
            self._collection = current
        return dict(current.metadata or {})

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's metadata (Chroma's own ``hnsw:*`` keys are left to Chroma)."""
        self.collection().modify(metadata={k: v for k, v in metadata.items() if not k.startswith("hnsw:")})

    def reset(self) -> None:
        """Delete the collection and create it again, empty (Chroma keeps a collection's dimension)."""
        self.collection()
        self._client.delete_collection(self._collection_name)
        self._collection = self._get_or_create(self._client)

    # -- records -----------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self.collection().count())

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        self.collection().upsert(ids=ids, embeddings=vectors, documents=documents, metadatas=metadatas)

    def query(self, vector: np.ndarray, k: int, where: Mapping[str, str] | None = None) -> list[ScoredRow]:
        result = self.collection().query(
            query_embeddings=vector[None, :],
            n_results=k,
            where=dict(where) if where else None,
            include=["documents", "metadatas", "distances"],
        )
        rows = zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        )
        return [(id_, doc, meta, 1.0 - float(dist)) for id_, doc, meta, dist in rows]

    def get(self, ids: Sequence[str], *, include: Sequence[str] = ("documents", "metadatas")) -> list[Row]:
        return _rows(self.collection().get(ids=list(ids), include=list(include)))

    def scan(
        self,
        where: Mapping[str, str] | None = None,
        *,
        limit: int,
        offset: int = 0,
        include: Sequence[str] = ("documents", "metadatas"),
    ) -> list[Row]:
        res = self.collection().get(
            where=dict(where) if where else None, limit=limit, offset=offset, include=list(include)
        )
        return _rows(res)

    def delete(self, ids: Sequence[str]) -> None:
        self.collection().delete(ids=list(ids))

    def scan_vectors(self, *, limit: int, offset: int = 0) -> tuple[list[str], np.ndarray]:
        """Ids and stored vectors of up to ``limit`` records from ``offset`` (what clustering reads)."""
        res = self.collection().get(limit=limit, offset=offset, include=["embeddings"])
        vectors = res.get("embeddings")
        ids = list(res["ids"])
        if vectors is None or len(ids) == 0:
            return ids, np.zeros((0, 0), dtype=np.float32)
        return ids, np.asarray(vectors, dtype=np.float32)

    # -- errors ------------------------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str, busy: Busy | None = None) -> Iterator[None]:
        """Turn Chroma's and the transport's exceptions into :class:`StoreError`.

        ``busy`` returns the pid of another process writing the store (or ``None``): the message
        then says why an embedded store cannot be read mid-write.
        """
        try:
            yield
        except PagesightError:
            raise
        except Exception as e:
            if not _is_backend_error(e):
                raise
            status = _auth_status(e)
            if status is not None:
                raise StoreAuthenticationError(
                    f"store {self.location}: {action} failed: authentication failed (HTTP {status}); the "
                    "server wants credentials: pass --chroma-header 'Authorization: Bearer TOKEN' (or "
                    "X-Chroma-Token, as the server expects), $PAGESIGHT_CHROMA_HEADERS, or headers= in Python"
                ) from e
            writer = busy() if busy is not None else None
            if writer is not None:
                # Chroma's embedded mode keeps each process's vector index in memory and flushes it
                # now and then: another process reading mid-write can find it incomplete on disk.
                raise StoreError(
                    f"store {self.location}: {action} failed while another process (pid {writer}) is "
                    "writing the store; an embedded store's index is not shared between processes. Try "
                    "again when it is done, or use a Chroma server (`chroma run`, then --store "
                    f"http://HOST:PORT) to read while writing ({type(e).__name__}: {e})"
                ) from e
            raise StoreError(f"store {self.location}: {action} failed: {type(e).__name__}: {e}") from e

    # -- helpers -----------------------------------------------------------------------------------

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

    def _check_database_file(self) -> None:
        """Refuse a ``chroma.sqlite3`` that is not an SQLite file before Chroma opens it.

        (Chroma cannot open a folder again in the same process after failing on it once.)
        """
        if self._path is None:
            return
        db = self._path / "chroma.sqlite3"
        try:
            with open(db, "rb") as f:
                header = f.read(16)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"store {self.location}: cannot read its database {db}: {e}") from e
        if header and header != b"SQLite format 3\x00":
            reason = "file is not a database: " + (
                "all zero bytes" if not header.strip(b"\0") else "no SQLite header"
            )
            raise DamagedStoreError(
                f"store {self.location} is damaged: its database {db} cannot be read ({reason}). "
                + StoreHealth(self.location, database_error=reason).advice(str(self._path))
            )

    @contextmanager
    def _damaged_database(self) -> Iterator[None]:
        """Turn "not a database" / "malformed" from opening an embedded store into DamagedStoreError."""
        try:
            yield
        except StoreError as e:
            text = str(e)
            corrupt = ("not a database", "malformed", "(code: 11)", "(code: 26)")
            if self._path is None or isinstance(e, DamagedStoreError) or not any(c in text for c in corrupt):
                raise
            raise DamagedStoreError(
                f"store {self.location} is damaged: its database {self._path / 'chroma.sqlite3'} cannot "
                f"be read ({e.__cause__ or e}). "
                + StoreHealth(self.location, database_error=text).advice(str(self._path))
            ) from e


def _settings_in_use(path: str) -> Any:
    """The settings of the Chroma client this process holds on ``path``, or ``None``."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient
    except ImportError:  # another chromadb layout: the defaults apply
        return None
    system = getattr(SharedSystemClient, "_identifier_to_system", {}).get(path)
    return getattr(system, "settings", None)


def _rows(res: Mapping[str, Any]) -> list[Row]:
    ids = res["ids"]
    docs = res.get("documents") or [""] * len(ids)
    metas = res.get("metadatas") or [{}] * len(ids)
    return list(zip(ids, docs, metas, strict=True))


# -- server options --------------------------------------------------------------------------------


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


def _is_backend_error(e: Exception) -> bool:
    """Whether ``e`` comes from Chroma, its Rust bindings, its HTTP transport or the filesystem."""
    module = type(e).__module__ or ""
    if module.startswith(("chromadb", "httpx", "httpcore")):
        return True
    if _auth_status(e) is not None or type(e.__context__).__module__.startswith("httpx"):
        return True  # chromadb's bare Exception(response text) for an HTTP error it cannot parse
    # The Rust bindings and client-side validation raise builtins (ValueError, TypeError,
    # UnicodeEncodeError); sqlite and the network raise OSError subclasses.
    return isinstance(e, ValueError | TypeError | OSError)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # tenant and database names (also folders)


@dataclass(frozen=True)
class _Server:
    """Where a server store connects and with what; ``repr`` never shows header values."""

    url: str  # without userinfo: safe to show
    host: str
    port: int
    ssl: bool
    headers: Mapping[str, str] = field(repr=False)
    tenant: str | None
    database: str | None

    @property
    def folder(self) -> str:
        """Relative folder of this server's local images and tokens (per tenant and database)."""
        base = f"{self.host}-{self.port}"
        if self.tenant is None and self.database is None:
            return base  # the folder stores had before tenants and databases were options
        return f"{base}/{self.tenant or 'default_tenant'}/{self.database or 'default_database'}"

    def client(self, chromadb: Any, settings: Any) -> Any:
        """A ``chromadb.HttpClient`` for this server."""
        from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT

        return chromadb.HttpClient(
            host=self.host,
            port=self.port,
            ssl=self.ssl,
            headers=dict(self.headers) or None,
            settings=settings,
            tenant=self.tenant or DEFAULT_TENANT,
            database=self.database or DEFAULT_DATABASE,
        )


def _server_options(
    url: str, headers: Mapping[str, str] | None, tenant: str | None, database: str | None
) -> _Server:
    """Check a server store's URL, headers, tenant and database (raising ConfigurationError)."""
    host, port, ssl = _parse_url(url)
    from pagesight.documents.url import basic_auth, strip_userinfo

    sent: dict[str, str] = {}
    auth = basic_auth(url)
    if auth is not None:
        sent["Authorization"] = auth
    url = strip_userinfo(url)  # shown and named in errors without user:password
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ConfigurationError(f"`headers`: {name!r} is not a valid HTTP header name")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            # the value is a secret: name the header, never show the value
            raise ConfigurationError(f"`headers`: the value of {name} must be a one-line string")
        sent = {k: v for k, v in sent.items() if k.lower() != name.lower()}
        sent[name] = value
    for what, name_given in (("tenant", tenant), ("database", database)):
        if name_given is not None and not (isinstance(name_given, str) and _NAME.fullmatch(name_given)):
            raise ConfigurationError(
                f"`{what}` must be 1-128 letters, digits, '_', '.' or '-' (not starting with one of "
                f"the last three), got {name_given!r}"
            )
    return _Server(url, host, port, ssl, sent, tenant, database)


def _auth_status(e: BaseException) -> int | None:
    """The HTTP status (401, 403, 407) when ``e`` says the server refused the credentials."""
    name = type(e).__name__
    if type(e).__module__.startswith("chromadb") and name in ("AuthorizationError", "ChromaAuthError"):
        return 401 if name == "AuthorizationError" else 403
    # chromadb raises a bare Exception(response text) for an HTTP error it cannot parse (a proxy's
    # 401 page) inside the handler of httpx's HTTPStatusError, and may re-raise that as a
    # ValueError: the status is down the exception's context chain.
    cause: BaseException | None = e
    for _ in range(5):
        if cause is None:
            break
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if type(cause).__name__ == "HTTPStatusError" and status in (401, 403, 407):
            return int(status)
        cause = cause.__cause__ or cause.__context__
    return None


def _parse_url(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no password in messages
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"`url` must look like http://host:port, got {shown!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(f"`url` has an invalid port: {shown!r}") from e
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else 8000), ssl


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "pagesight"


IMAGE_DIR_ENV = "PAGESIGHT_IMAGE_DIR"
"""A folder every machine reaches (NFS, a mounted bucket) or an fsspec URL (``s3://bucket/pages``):
server stores keep page images there."""


def server_files_dir(what: str) -> Path:
    """The root of a server store's local files of ``what``: ``$PAGESIGHT_IMAGE_DIR`` for images
    when it names a folder, else this machine's cache (``$XDG_CACHE_HOME/pagesight/<what>``; with
    ``$PAGESIGHT_IMAGE_DIR`` an fsspec URL, the cache of the images there)."""
    shared = os.environ.get(IMAGE_DIR_ENV)
    if what == "images" and shared and not is_url(shared):
        return Path(shared).expanduser()
    return _cache_dir() / what


def shared_image_url(local: Path) -> str | None:
    """The image URL of a server store whose default image folder is ``local``:
    ``$PAGESIGHT_IMAGE_DIR/<the same sub-path>`` when that variable is an fsspec URL
    (``s3://bucket/pages``), else ``None``."""
    shared = os.environ.get(IMAGE_DIR_ENV)
    if not shared or not is_url(shared):
        return None
    try:
        sub = local.relative_to(server_files_dir("images"))
    except ValueError:
        return None
    return f"{shared.rstrip('/')}/{sub.as_posix()}"


def _close_clients(clients: list[Any]) -> None:
    """Close the clients a garbage-collected backend left open (its finalizer)."""
    while clients:
        try:
            clients.pop().close()
        except Exception as e:  # a finalizer must not raise
            logger.debug("closing a dropped Chroma client failed: %s", e)

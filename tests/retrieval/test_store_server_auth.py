"""Chroma server stores with auth headers, tenants and databases, against a real ``chroma run``.

Authentication is checked by a real reverse proxy on loopback in front of the server (what a
deployment puts there, or what Chroma's own token auth does): it refuses requests without the
expected header with 401 and forwards the rest.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, StoreAuthenticationError, StoreError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore

pytest.importorskip("chromadb", reason="the chroma extra is not installed")
pytestmark = pytest.mark.enable_socket

DIMS = 16
INFO = EmbedderInfo("all-minilm-l6-v2", None, DIMS, "dense-text")
TOKEN = "s3cret-token-value"
MakePages = Callable[..., list[Page]]
Vectors = Callable[[int, int], np.ndarray]


class AuthProxy:
    """A loopback reverse proxy that forwards to ``upstream`` only requests carrying an allowed header."""

    def __init__(self, upstream: str, allowed: list[tuple[str, str]]) -> None:
        import httpx

        self.allowed = allowed  # (header, value) pairs, any one of which lets a request through
        self.refused = 0
        self.forwarded = 0
        proxy = self
        client = httpx.Client(base_url=upstream, timeout=30)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                ok = any(self.headers.get(k) == v for k, v in proxy.allowed)
                if not ok:
                    proxy.refused += 1
                    self._send(401, {"Content-Type": "text/plain"}, b"Unauthorized: token required")
                    return
                proxy.forwarded += 1
                skip = {"host", "content-length", "connection", *(k.lower() for k, _ in proxy.allowed)}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                resp = client.request(self.command, self.path, content=body, headers=headers)
                keep = {k: v for k, v in resp.headers.items() if k.lower() == "content-type"}
                self._send(resp.status_code, keep, resp.content)

            def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._client = client
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


@pytest.fixture
def proxy(chroma_server: str) -> Iterator[AuthProxy]:
    p = AuthProxy(chroma_server, [("Authorization", f"Bearer {TOKEN}"), ("X-Chroma-Token", TOKEN)])
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # server stores keep images there
    for name in ("PAGESIGHT_CHROMA_HEADERS", "CHROMA_TENANT", "CHROMA_DATABASE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tenant_databases(chroma_server: str) -> tuple[str, str, str]:
    """A new tenant with two databases, made with chromadb's AdminClient."""
    import chromadb
    from chromadb.config import Settings

    host, port = chroma_server.removeprefix("http://").split(":")
    admin = chromadb.AdminClient(
        Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host=host,
            chroma_server_http_port=int(port),
            anonymized_telemetry=False,
        )
    )
    tenant = f"team-{uuid.uuid4().hex[:8]}"
    admin.create_tenant(tenant)
    for database in ("alpha", "beta"):
        admin.create_database(database, tenant=tenant)
    return tenant, "alpha", "beta"


def test_databases_of_a_tenant_do_not_see_each_others_pages(
    chroma_server: str, tenant_databases: tuple[str, str, str], make_pages: MakePages, vectors: Vectors
) -> None:
    tenant, alpha, beta = tenant_databases
    with PageStore(url=chroma_server, tenant=tenant, database=alpha) as a:
        pages = make_pages("a.pdf", 3)
        a.add_source(pages, vectors(3, DIMS), embedder=INFO)
        assert a.count() == 3 and [s.source for s in a.sources()] == ["a.pdf"]
        assert f"tenant {tenant}, database {alpha}" in a.location
        a_images = {h.image for h in a.search(vectors(1, DIMS)[0], k=3, embedder=INFO)}
    with PageStore(url=chroma_server, tenant=tenant, database=beta) as b:
        assert b.count() == 0 and b.sources() == [] and b.embedder is None
        b.add_source(make_pages("b.pdf", 1), vectors(1, DIMS), embedder=INFO)
        assert b.image_dir != PageStore(url=chroma_server, tenant=tenant, database=alpha).image_dir
    with PageStore(url=chroma_server, tenant=tenant, database=alpha) as a:
        assert [s.source for s in a.sources()] == ["a.pdf"]  # beta's page did not land in alpha
        assert all(image is not None and image.is_file() for image in a_images)
    with PageStore(url=chroma_server, collection=f"c-{uuid.uuid4().hex[:8]}") as default:
        assert default.sources() == []


def test_a_missing_database_or_a_bad_name_is_a_clear_error(
    chroma_server: str, tenant_databases: tuple[str, str, str]
) -> None:
    tenant, _, _ = tenant_databases
    with pytest.raises(StoreError, match="missing-db"):
        PageStore(url=chroma_server, tenant=tenant, database="missing-db").count()
    with pytest.raises(ConfigurationError, match="`database` must be"):
        PageStore(url=chroma_server, database="../../etc")  # it names a local folder too
    with pytest.raises(ConfigurationError, match="apply to a Chroma server"):
        PageStore("folder", tenant=tenant)


def test_auth_headers_open_the_server_and_their_absence_is_a_typed_error(
    proxy: AuthProxy, make_pages: MakePages, vectors: Vectors
) -> None:
    collection = f"auth-{uuid.uuid4().hex[:8]}"
    with PageStore(url=proxy.url, headers={"Authorization": f"Bearer {TOKEN}"}, collection=collection) as s:
        s.add_source(make_pages("a.pdf", 2), vectors(2, DIMS), embedder=INFO)
        assert s.count() == 2
        assert TOKEN not in repr(s) and TOKEN not in s.location
    assert proxy.forwarded > 0 and proxy.refused == 0
    with PageStore(url=proxy.url, headers={"X-Chroma-Token": TOKEN}, collection=collection) as s:
        assert [x.source for x in s.sources()] == ["a.pdf"]
    for headers in (None, {"Authorization": "Bearer wrong"}):
        with pytest.raises(StoreAuthenticationError, match=r"authentication failed \(HTTP 401\)") as info:
            PageStore(url=proxy.url, headers=headers, collection=collection).count()
        assert "--chroma-header" in str(info.value) and TOKEN not in str(info.value)
    assert proxy.refused >= 2


def test_user_and_password_in_the_url_are_sent_as_basic_auth_and_never_shown(proxy: AuthProxy) -> None:
    proxy.allowed[:] = [("Authorization", "Basic " + base64.b64encode(f"alice:{TOKEN}".encode()).decode())]
    url = proxy.url.replace("http://", f"http://alice:{TOKEN}@")
    store = PageStore(url=url, collection=f"basic-{uuid.uuid4().hex[:8]}")
    assert store.count() == 0
    assert TOKEN not in store.location and TOKEN not in repr(store) and "alice" not in store.location
    with pytest.raises(ConfigurationError) as info:
        PageStore(url=f"http://alice:{TOKEN}@127.0.0.1:notaport")
    assert TOKEN not in str(info.value)


def test_chromas_own_auth_settings_from_the_environment_apply(
    proxy: AuthProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_CLIENT_AUTH_PROVIDER", "chromadb.auth.token_authn.TokenAuthClientProvider")
    monkeypatch.setenv("CHROMA_CLIENT_AUTH_CREDENTIALS", TOKEN)
    monkeypatch.setenv("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER", "X-Chroma-Token")
    assert PageStore(url=proxy.url, collection=f"env-{uuid.uuid4().hex[:8]}").count() == 0


def test_multivector_store_passes_headers_and_keeps_tokens_per_database(
    proxy: AuthProxy, chroma_server: str, tenant_databases: tuple[str, str, str]
) -> None:
    tenant, alpha, beta = tenant_databases
    a = MultiVectorStore(url=proxy.url, headers={"X-Chroma-Token": TOKEN}, tenant=tenant, database=alpha)
    b = MultiVectorStore(url=proxy.url, headers={"X-Chroma-Token": TOKEN}, tenant=tenant, database=beta)
    assert a.count() == 0 and b.count() == 0
    assert a._token_dir != b._token_dir and tenant in str(a._token_dir)
    with pytest.raises(StoreAuthenticationError):
        MultiVectorStore(url=proxy.url, tenant=tenant, database=alpha).count()
    a.close()
    b.close()


def test_cli_flags_and_environment_reach_the_server(
    proxy: AuthProxy,
    tenant_databases: tuple[str, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pagesight.cli import main
    from tests.pipelines.conftest import GARDEN, write_pdf

    tenant, alpha, beta = tenant_databases
    pdf = write_pdf(tmp_path / "garden.pdf", GARDEN)
    where = ["--store", proxy.url, "--chroma-tenant", tenant]
    header = ["--chroma-header", f"Authorization: Bearer {TOKEN}"]
    code = main(["index", str(pdf), *where, "--chroma-database", alpha, *header, "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 source(s) indexed (2 pages)" in err and TOKEN not in out + err

    monkeypatch.setenv("PAGESIGHT_CHROMA_HEADERS", f"X-Chroma-Token: {TOKEN}")
    monkeypatch.setenv("CHROMA_DATABASE", alpha)
    assert main(["sources", *where, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"source": str(pdf), "pages": 2}]
    assert main(["sources", *where, "--chroma-database", beta, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # the flag wins over $CHROMA_DATABASE

    assert main(["check", *where]) == 0, capsys.readouterr().err  # check takes the same options
    assert "every part agrees" in capsys.readouterr().out

    monkeypatch.delenv("PAGESIGHT_CHROMA_HEADERS")
    assert main(["search", "tomatoes", *where]) == 1
    out, err = capsys.readouterr()
    assert "authentication failed (HTTP 401)" in err and "Traceback" not in err
    assert main(["sources", "--store", str(tmp_path / "folder"), "--chroma-tenant", tenant]) == 2
    assert "apply to --store http://host:port" in capsys.readouterr().err
    assert main(["sources", *where, "--chroma-header", f"Bearer {TOKEN}"]) == 2
    err = capsys.readouterr().err
    assert "expected 'Name: value'" in err and TOKEN not in err

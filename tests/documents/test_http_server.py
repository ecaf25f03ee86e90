"""The loopback test server other tests reuse (tests/http_server.py)."""

from __future__ import annotations

import httpx
import pytest
from http_server import LoopbackHTTPServer, Route

pytestmark = pytest.mark.enable_socket


def test_routes_status_headers_and_recording() -> None:
    routes = {"/a": Route(body=b"hello", content_type="text/plain", headers={"X-Test": "1"})}
    with LoopbackHTTPServer(routes) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        r = httpx.get(server.url("/a?q=1"), headers={"User-Agent": "probe"})
        assert (r.status_code, r.text, r.headers["content-type"], r.headers["x-test"]) == (
            200,
            "hello",
            "text/plain",
            "1",
        )
        assert r.headers["content-length"] == "5"
        missing = httpx.get(server.url("nothing"))
        assert missing.status_code == 404 and "404" in missing.text
        assert [(q.method, q.path, q.headers["User-Agent"]) for q in server.requests][0] == (
            "GET",
            "/a?q=1",
            "probe",
        )
        assert len(server.requests) == 2


def test_redirect_head_and_added_routes() -> None:
    with LoopbackHTTPServer() as server:
        server.add("/from", Route(redirect="/to"))
        server.add("/to", Route(body=b"arrived", status=201))
        r = httpx.get(server.url("/from"), follow_redirects=True)
        assert (r.status_code, r.text, [h.status_code for h in r.history]) == (201, "arrived", [302])
        head = httpx.head(server.url("/to"))
        assert head.status_code == 201 and head.content == b"" and head.headers["content-length"] == "7"


def test_streamed_body_without_length_and_delay() -> None:
    body = bytes(range(256)) * 100
    with LoopbackHTTPServer(
        {"/s": Route(body=body, send_length=False, chunk_size=1000), "/slow": Route(body=b"x", delay=0.5)}
    ) as server:
        r = httpx.get(server.url("/s"))
        assert r.content == body and "content-length" not in r.headers
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(server.url("/slow"), timeout=0.1)


def test_stopped_server_refuses() -> None:
    server = LoopbackHTTPServer().start()
    url = server.url("/")
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    with pytest.raises(RuntimeError, match="not running"):
        server.url("/")

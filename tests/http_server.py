"""A real HTTP server on loopback for tests: stdlib ``http.server``, threaded, port 0.

Tests that use it need ``@pytest.mark.enable_socket`` (pytest-socket disables sockets by default).

Example::

    from http_server import LoopbackHTTPServer, Route

    @pytest.mark.enable_socket
    def test_fetch():
        with LoopbackHTTPServer({"/a.pdf": Route(body=pdf_bytes, content_type="application/pdf")}) as server:
            pages = list(load_url(server.url("/a.pdf")))
            assert server.requests[0].headers["User-Agent"] == "pagesight/0.1"

Routes can be added after the server starts (``server.add("/x", Route(...))``). A path without a
route answers 404. Every request is recorded in ``server.requests``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["LoopbackHTTPServer", "RecordedRequest", "Route"]


@dataclass(frozen=True)
class Route:
    """What the server answers on one path.

    Attributes:
        body: the response body.
        status: the HTTP status code.
        content_type: the Content-Type header; ``None`` sends none.
        delay: seconds to wait before sending anything (to trigger client timeouts).
        redirect: a path or URL to send in ``Location`` (status defaults to 302 when set).
        headers: extra response headers.
        send_length: send Content-Length (else the body is streamed and the connection closed).
        declared_length: a Content-Length to announce instead of the real one (a lie, to test limits);
            the real body is still sent.
        chunk_size: with ``send_length=False``, write the body in chunks of this size.
        chunk_delay: seconds to sleep between chunks.
        chunk_delays: with ``send_length=False``, seconds to sleep before each chunk, in order
            (a schedule; ``chunk_delay`` is then not used).
    """

    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/plain; charset=utf-8"
    delay: float = 0.0
    redirect: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    send_length: bool = True
    declared_length: int | None = None
    chunk_size: int = 65536
    chunk_delay: float = 0.0
    chunk_delays: tuple[float, ...] = ()


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.server.owner._record(RecordedRequest(self.command, self.path, dict(self.headers.items())))
        route = self.server.owner.routes.get(path)
        if route is None:
            route = Route(
                body=b"<html><body><h1>404 Not Found</h1></body></html>", status=404, content_type="text/html"
            )
        if route.delay:
            time.sleep(route.delay)
        status = route.status
        if route.redirect is not None and status == 200:
            status = 302
        try:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            self.send_response(status, phrase)
            if route.content_type is not None:
                self.send_header("Content-Type", route.content_type)
            if route.redirect is not None:
                self.send_header("Location", route.redirect)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.send_length:
                length = len(route.body) if route.declared_length is None else route.declared_length
                self.send_header("Content-Length", str(length))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not send_body:
                return
            if route.send_length:
                self.wfile.write(route.body)
            else:
                for i, start in enumerate(range(0, len(route.body), route.chunk_size)):
                    if i < len(route.chunk_delays):
                        time.sleep(route.chunk_delays[i])
                    self.wfile.write(route.body[start : start + route.chunk_size])
                    self.wfile.flush()
                    if route.chunk_delay and not route.chunk_delays:
                        time.sleep(route.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (limit or timeout): fine
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._answer(send_body=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: LoopbackHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops a kept-alive connection (a timeout, a size limit) is normal here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LoopbackHTTPServer:
    """A threaded HTTP server on ``127.0.0.1`` and a free port, serving configured :class:`Route`\\ s.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`).

    Args:
        routes: path (without query string) → :class:`Route`.
    """

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def add(self, path: str, route: Route) -> None:
        """Serve ``route`` on ``path`` (replacing any route there)."""
        self.routes[path] = route

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the server is not running; use it as a context manager or call start()")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """The full URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> LoopbackHTTPServer:
        """Bind to a free loopback port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

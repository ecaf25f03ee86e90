"""load_url against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from doc_factories import image_bytes, pdf_bytes
from http_server import LoopbackHTTPServer, Route
from PIL import Image

from pagesight.documents import USER_AGENT, Renderer, load_url
from pagesight.errors import (
    DocumentLoadError,
    EmptyDocumentError,
    NotAPDFError,
    UnsupportedSourceError,
    URLFetchError,
)

pytestmark = pytest.mark.enable_socket

TEXTS = ["Web PDF page one", "Web PDF page two"]
HTML = (
    b"<html><head><title>Guide</title><script>SCRIPT</script></head><body><nav>NAV</nav>"
    + b"".join(b"<p>Paragraph %d " % i + b"lorem ipsum " * 15 + b"</p>" for i in range(6))
    + b"<footer>FOOTER</footer></body></html>"
)
ERROR_PAGE = b"<!DOCTYPE html><html><body><h1>Please log in</h1></body></html>"


def test_pdf(http_server: LoopbackHTTPServer, image_dir: Path, renderer: Renderer) -> None:
    data = pdf_bytes(TEXTS)
    http_server.add("/doc.pdf", Route(body=data, content_type="application/pdf"))
    url = http_server.url("/doc.pdf")
    pages = list(load_url(url, image_dir=image_dir, renderer=renderer, dpi=72))
    assert [(p.source, p.page, p.text) for p in pages] == [(url, 1, TEXTS[0]), (url, 2, TEXTS[1])]
    assert {p.content_hash for p in pages} == {hashlib.sha256(data).hexdigest()}
    assert pages[0].image is not None
    with Image.open(pages[0].image) as im:
        assert im.size == (200, 300)
    (request,) = http_server.requests
    assert request.headers["User-Agent"] == USER_AGENT == "pagesight/0.1"


def test_pdf_as_octet_stream_is_sniffed(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/download", Route(body=pdf_bytes(TEXTS), content_type="application/octet-stream"))
    assert [p.text for p in load_url(http_server.url("/download"), render=False)] == TEXTS


def test_html(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/guide", Route(body=HTML, content_type="text/html; charset=utf-8"))
    url = http_server.url("/guide")
    pages = list(load_url(url, html_page_chars=400))
    assert len(pages) >= 3
    assert all(p.source == url and p.image is None and (p.width, p.height) == (0, 0) for p in pages)
    assert all(len(p.text) <= 400 for p in pages)
    text = "\n\n".join(p.text for p in pages)
    assert text.startswith("Guide\n\nParagraph 0 lorem ipsum")
    assert "Paragraph 5" in text
    assert "SCRIPT" not in text and "NAV" not in text and "FOOTER" not in text
    assert pages[0].content_hash == hashlib.sha256(HTML).hexdigest()


def test_png(http_server: LoopbackHTTPServer, image_dir: Path) -> None:
    data = image_bytes((30, 20), "PNG", "green")
    http_server.add("/chart.png", Route(body=data, content_type="image/png"))
    (page,) = load_url(http_server.url("/chart.png"), image_dir=image_dir)
    assert (page.page, page.text, page.width, page.height) == (1, "", 30, 20)
    assert page.content_hash == hashlib.sha256(data).hexdigest()
    assert page.image is not None and page.image.parent == image_dir


def test_redirects_followed_source_kept(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/old", Route(redirect="/mid", status=301))
    http_server.add("/mid", Route(redirect="/doc.pdf"))
    http_server.add("/doc.pdf", Route(body=pdf_bytes(TEXTS), content_type="application/pdf"))
    pages = list(load_url(http_server.url("/old"), render=False))
    assert [p.source for p in pages] == [http_server.url("/old")] * 2
    assert [r.path for r in http_server.requests] == ["/old", "/mid", "/doc.pdf"]


# ----------------------------------------------------------------------------- Content-Type vs bytes


def test_html_served_as_pdf(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/report.pdf", Route(body=ERROR_PAGE, content_type="application/pdf"))
    url = http_server.url("/report.pdf")
    with pytest.raises(NotAPDFError, match=rf"{url}: served as application/pdf but the body is an HTML page"):
        load_url(url)


def test_pdf_served_as_html(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/page", Route(body=pdf_bytes(TEXTS), content_type="text/html"))
    with pytest.raises(DocumentLoadError, match=r"served as text/html but the body is a PDF"):
        load_url(http_server.url("/page"))


def test_html_served_as_image(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/logo.png", Route(body=ERROR_PAGE, content_type="image/png"))
    with pytest.raises(DocumentLoadError, match=r"served as image/png but the body is an HTML page"):
        load_url(http_server.url("/logo.png"))


def test_unsupported_content_type(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/api", Route(body=b'{"a": 1}', content_type="application/json"))
    with pytest.raises(UnsupportedSourceError, match=r"/api: Content-Type application/json is not supported"):
        load_url(http_server.url("/api"))


def test_empty_body(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/empty", Route(body=b"", content_type="application/pdf"))
    with pytest.raises(EmptyDocumentError, match=r"/empty: the server returned an empty body"):
        load_url(http_server.url("/empty"))


# ----------------------------------------------------------------------------- fetch errors


@pytest.mark.parametrize(
    ("status", "match"),
    [
        (404, r"HTTP 404 Not Found; check the address"),
        (403, r"HTTP 403 Forbidden; the server refused access"),
        (503, r"HTTP 503 Service Unavailable; the server failed, try again later"),
    ],
)
def test_http_status(http_server: LoopbackHTTPServer, status: int, match: str) -> None:
    http_server.add("/x.pdf", Route(body=ERROR_PAGE, status=status, content_type="text/html"))
    url = http_server.url("/x.pdf")
    with pytest.raises(URLFetchError, match=rf"^{url}: {match}") as info:
        load_url(url)
    assert info.value.source == url


def test_timeout(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/slow", Route(body=b"<p>late</p>", content_type="text/html", delay=3.0))
    start = time.perf_counter()
    with pytest.raises(
        URLFetchError, match=r"/slow: no answer within 0.3 s \(timeout=0.3\); raise it with timeout="
    ):
        load_url(http_server.url("/slow"), timeout=0.3)
    assert time.perf_counter() - start < 2.5


def test_oversized_by_content_length(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/big.pdf", Route(body=b"%PDF-" + bytes(5000), content_type="application/pdf"))
    with pytest.raises(
        URLFetchError, match=r"5,005 bytes \(Content-Length\), over the limit of 1,000 bytes.*max_bytes="
    ):
        load_url(http_server.url("/big.pdf"), max_bytes=1000)


def test_oversized_while_streaming(http_server: LoopbackHTTPServer) -> None:
    # No Content-Length (or a lying one): the limit is enforced on the bytes actually received.
    http_server.add(
        "/stream",
        Route(body=bytes(50_000), content_type="application/pdf", send_length=False, chunk_size=4096),
    )
    with pytest.raises(
        URLFetchError,
        match=r"more than 10,000 bytes, over the limit of 10,000 bytes; raise it with max_bytes=",
    ):
        load_url(http_server.url("/stream"), max_bytes=10_000)


def test_redirect_loop(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/a", Route(redirect="/b"))
    http_server.add("/b", Route(redirect="/a"))
    with pytest.raises(URLFetchError, match=r"/a: too many redirects \(more than 3; a redirect loop\?\)"):
        load_url(http_server.url("/a"), max_redirects=3)
    assert len(http_server.requests) == 4


def test_connection_refused() -> None:
    with LoopbackHTTPServer() as server:
        url = server.url("/gone.pdf")
    with pytest.raises(URLFetchError, match=r"gone\.pdf: could not connect"):
        load_url(url, timeout=2)


@pytest.mark.parametrize("url", ["ftp://example.org/a.pdf", "file:///etc/hosts", "http:///nohost"])
def test_non_http_addresses(url: str) -> None:
    with pytest.raises(UnsupportedSourceError, match=url):
        load_url(url)

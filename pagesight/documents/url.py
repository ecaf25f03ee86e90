"""Load a web address: a PDF's pages, an HTML page's readable text, or an image, chosen by Content-Type.

The declared Content-Type is checked against the body's first bytes, so an HTML error page served
as ``application/pdf`` is reported instead of indexed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from pagesight.documents.html import load_html_bytes
from pagesight.documents.images import DEFAULT_MAX_PIXELS, load_image_bytes, sniff_image_format
from pagesight.documents.page import Page
from pagesight.documents.pdf import Renderer, is_pdf_bytes, load_pdf_bytes
from pagesight.errors import (
    ConfigurationError,
    DocumentLoadError,
    EmptyDocumentError,
    NotAPDFError,
    UnsupportedSourceError,
    URLFetchError,
)

__all__ = ["USER_AGENT", "FetchedBody", "fetch_url", "load_url"]

logger = logging.getLogger(__name__)

USER_AGENT = "pagesight/0.1"

_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf", "application/acrobat", "application/vnd.pdf"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/tiff", "image/webp"})
_GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/download",
        "application/force-download",
        "application/unknown",
    }
)
_SUPPORTED = "PDF, HTML, and PNG/JPEG/TIFF/WebP images"


@dataclass(frozen=True, slots=True)
class FetchedBody:
    """A downloaded response body.

    Attributes:
        url: the URL as the caller gave it.
        final_url: the URL after redirects.
        media_type: the Content-Type without parameters, lower case (``""`` when absent).
        charset: the Content-Type's charset parameter, if any.
        body: the (decompressed) bytes.
    """

    url: str
    final_url: str
    media_type: str
    charset: str | None
    body: bytes


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise UnsupportedSourceError(
            url, f"only http:// and https:// addresses can be fetched, got {shown}; pass local files as paths"
        )
    if not parts.hostname:
        raise UnsupportedSourceError(url, "the address has no host name")


def _status_message(response: httpx.Response) -> str:
    code = response.status_code
    head = f"HTTP {code} {response.reason_phrase}".rstrip()
    if code in (404, 410):
        return f"{head}; check the address"
    if code in (401, 403, 407):
        return f"{head}; the server refused access (a login or permission is needed)"
    if code == 429:
        return f"{head}; the server is rate limiting, try again later"
    if code >= 500:
        return f"{head}; the server failed, try again later"
    return f"{head}; the server did not return the document"


def _too_large(url: str, size: str, max_bytes: int) -> URLFetchError:
    return URLFetchError(
        url, f"the response is {size}, over the limit of {max_bytes:,} bytes; raise it with max_bytes="
    )


def fetch_url(
    url: str, *, timeout: float = 20.0, max_bytes: int = 64 * 2**20, max_redirects: int = 5
) -> FetchedBody:
    """Download ``url`` with a streamed body, refusing bodies over ``max_bytes``.

    Args:
        url: an ``http://`` or ``https://`` address.
        timeout: seconds to wait to connect and for each read.
        max_bytes: largest body accepted (checked against Content-Length up front and while streaming).
        max_redirects: how many redirects to follow.

    Raises:
        UnsupportedSourceError: not an http(s) address.
        URLFetchError: HTTP error status, timeout, connection failure, too many redirects, body too large.
    """
    _check_url(url)
    if timeout <= 0:
        raise ConfigurationError(f"`timeout` must be positive, got {timeout}")
    if max_bytes < 1:
        raise ConfigurationError(f"`max_bytes` must be at least 1, got {max_bytes}")
    if max_redirects < 0:
        raise ConfigurationError(f"`max_redirects` must be 0 or more, got {max_redirects}")
    headers = {"User-Agent": USER_AGENT, "Accept": "application/pdf, text/html, image/*;q=0.9, */*;q=0.5"}
    try:
        with (
            httpx.Client(
                follow_redirects=True, max_redirects=max_redirects, timeout=timeout, headers=headers
            ) as client,
            client.stream("GET", url) as response,
        ):
            if not 200 <= response.status_code < 300:
                raise URLFetchError(url, _status_message(response))
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(url, f"{int(declared):,} bytes (Content-Length)", max_bytes)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, f"more than {max_bytes:,} bytes", max_bytes)
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            charset = response.charset_encoding
            final_url = str(response.url)
    except httpx.TooManyRedirects as e:
        raise URLFetchError(
            url,
            f"too many redirects (more than {max_redirects}; a redirect loop?); raise max_redirects= "
            "if the chain is legitimate",
        ) from e
    except httpx.ConnectTimeout as e:
        raise URLFetchError(
            url, f"could not connect within {timeout:g} s (timeout={timeout:g}); raise it with timeout="
        ) from e
    except httpx.TimeoutException as e:
        raise URLFetchError(
            url, f"no answer within {timeout:g} s (timeout={timeout:g}); raise it with timeout="
        ) from e
    except httpx.ConnectError as e:
        raise URLFetchError(url, f"could not connect ({e}); is the address right and the server up?") from e
    except httpx.UnsupportedProtocol as e:
        raise URLFetchError(url, f"cannot follow the address ({e}); only http:// and https:// work") from e
    except httpx.InvalidURL as e:
        raise UnsupportedSourceError(url, f"not a valid address ({e})") from e
    except httpx.HTTPError as e:
        raise URLFetchError(url, f"the download failed: {type(e).__name__}: {e}") from e
    logger.debug(
        "fetched %s (%s, %d bytes) from %s", url, media_type or "no Content-Type", len(body), final_url
    )
    return FetchedBody(url, final_url, media_type, charset, bytes(body))


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")) or b"<html" in head


def _sniff(body: bytes) -> str | None:
    if is_pdf_bytes(body):
        return "pdf"
    if sniff_image_format(body):
        return "image"
    if _looks_like_html(body):
        return "html"
    return None


def _describe(body: bytes) -> str:
    if is_pdf_bytes(body):
        return "a PDF"
    fmt = sniff_image_format(body)
    if fmt:
        return f"a {fmt} image"
    if _looks_like_html(body):
        return "an HTML page (an error or login page?)"
    return f"data starting with {body[:12]!r}"


def _kind(fetched: FetchedBody) -> str:
    """Pick "pdf", "html" or "image" from the Content-Type, checked against the body's magic bytes."""
    url, media, body = fetched.url, fetched.media_type, fetched.body
    sniffed = _sniff(body)
    if media in _PDF_TYPES:
        if sniffed != "pdf":
            raise NotAPDFError(url, f"served as {media} but the body is {_describe(body)}, not a PDF")
        return "pdf"
    if media in _IMAGE_TYPES:
        if sniffed != "image":
            raise DocumentLoadError(url, f"served as {media} but the body is {_describe(body)}, not an image")
        return "image"
    if media in _HTML_TYPES:
        if sniffed in ("pdf", "image"):
            raise DocumentLoadError(
                url,
                f"served as {media} but the body is {_describe(body)}; the server's Content-Type is wrong",
            )
        return "html"
    if media in _GENERIC_TYPES and sniffed is not None:
        return sniffed
    what = f"Content-Type {media}" if media else "a body without Content-Type"
    raise UnsupportedSourceError(url, f"{what} is not supported (supported: {_SUPPORTED})")


def load_url(
    url: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 64 * 2**20,
    max_redirects: int = 5,
    dpi: float = 96,
    renderer: Renderer | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    html_page_chars: int = 3000,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[Page]:
    """Fetch a URL and load it as pages.

    The body is downloaded when this function is called (errors raise here); PDF pages are then
    rendered lazily as the iterator is consumed.

    - PDF: its pages, as :func:`~pagesight.documents.load_pdf` gives them.
    - HTML: readable text (scripts, navigation, header, footer, asides dropped), split at paragraph
      boundaries into pages of about ``html_page_chars`` characters, ``image=None``.
    - PNG, JPEG, TIFF, WebP: one page (one per TIFF frame).

    Example:
        >>> pages = list(load_url("https://example.org/report.pdf"))  # doctest: +SKIP
        >>> pages[0].source, pages[0].page  # doctest: +SKIP
        ('https://example.org/report.pdf', 1)

    Args:
        url: an ``http://`` or ``https://`` address; pages carry it as given in ``Page.source``.
        timeout: seconds to wait to connect and for each read.
        max_bytes: largest body accepted (64 MiB by default).
        max_redirects: how many redirects to follow.
        dpi: PDF render resolution.
        renderer: PDF renderer, see :func:`~pagesight.documents.load_pdf`.
        image_dir: folder for page PNGs; ``None`` makes a temporary one.
        render: ``False`` skips rendering PDF pages.
        html_page_chars: about how many characters an HTML page's chunk holds.
        max_pixels: pixel limit for images.

    Raises:
        UnsupportedSourceError: not http(s), or a Content-Type pagesight does not read.
        URLFetchError: HTTP error, timeout, connection failure, redirect loop, body too large.
        NotAPDFError: served as PDF but the body is not one (an HTML error page, say).
        DocumentLoadError: any error the PDF, HTML or image loader raises for the body.
    """
    fetched = fetch_url(url, timeout=timeout, max_bytes=max_bytes, max_redirects=max_redirects)
    if not fetched.body:
        raise EmptyDocumentError(url, "the server returned an empty body")
    kind = _kind(fetched)
    if kind == "pdf":
        return load_pdf_bytes(
            fetched.body, source=url, dpi=dpi, renderer=renderer, image_dir=image_dir, render=render
        )
    if kind == "image":
        return load_image_bytes(fetched.body, source=url, max_pixels=max_pixels, image_dir=image_dir)
    return load_html_bytes(fetched.body, source=url, charset=fetched.charset, page_chars=html_page_chars)

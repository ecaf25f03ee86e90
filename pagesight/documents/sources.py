"""Dispatch a source string (URL, PDF, image or folder) to the right loader."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from pagesight.documents.images import DEFAULT_MAX_PIXELS, load_image
from pagesight.documents.page import Page
from pagesight.documents.pdf import (
    DEFAULT_MAX_CHARS_PER_PAGE,
    DEFAULT_MAX_PAGES,
    Renderer,
    load_pdf,
)
from pagesight.errors import SourceNotFoundError, UnsupportedSourceError

__all__ = [
    "PDF_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "is_url",
    "is_supported_file",
    "load_source",
]

PDF_EXTENSIONS = frozenset({".pdf"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
SUPPORTED_EXTENSIONS = PDF_EXTENSIONS | IMAGE_EXTENSIONS
"""File extensions pagesight loads (compared case-insensitively)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source: str) -> bool:
    """True when ``source`` looks like ``scheme://...`` (any scheme; only http and https load).

    Example:
        >>> is_url("https://example.org/a.pdf"), is_url("docs/a.pdf"), is_url("C:\\\\docs\\\\a.pdf")
        (True, False, False)
    """
    return bool(_URL.match(source))


def is_supported_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends in a supported extension (``.pdf``, ``.png``, ``.JPG``, ...)."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS


def load_source(
    source: str | os.PathLike[str],
    *,
    dpi: float = 96,
    renderer: Renderer | None = None,
    password: str | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    timeout: float = 20.0,
    max_bytes: int = 64 * 2**20,
    max_redirects: int = 5,
    html_page_chars: int = 3000,
    recursive: bool = True,
    allow_private: bool | None = None,
) -> Iterator[Page]:
    """Load any supported source: a URL, a PDF, an image file or a folder of them.

    Each loader takes the options that apply to it and ignores the rest, so one set of options
    works for a mixed list of sources.

    Example:
        >>> for page in load_source("https://example.org/paper.pdf", dpi=120):  # doctest: +SKIP
        ...     ...

    Args:
        source: an ``http(s)://`` URL, a file path, or a folder path.
        dpi: PDF render resolution.
        renderer: PDF renderer (``"pymupdf"``, ``"pdfium"`` or ``None``).
        password: password of an encrypted PDF.
        image_dir: folder for page PNGs; ``None`` makes a temporary one.
        render: ``False`` skips rendering PDF pages.
        max_pixels: pixel limit for images and rendered PDF pages.
        max_pages: PDFs with more pages are refused before any page is rendered.
        max_chars_per_page: PDF page text beyond this is cut, with a warning.
        timeout: URL fetch timeout in seconds.
        max_bytes: largest URL body accepted.
        max_redirects: how many redirects a URL may follow.
        html_page_chars: about how many characters an HTML page's chunk holds.
        recursive: for folders, include sub-folders.
        allow_private: URLs: also fetch private, loopback and link-local addresses (trusted networks
            only); ``None`` reads the ``PAGESIGHT_ALLOW_PRIVATE_URLS`` environment variable.

    Raises:
        SourceNotFoundError: the path does not exist.
        UnsupportedSourceError: the extension or URL scheme is not supported (the message lists what is).
        DocumentLoadError: whatever the chosen loader raises.
    """
    text = os.fspath(source)
    if is_url(text):
        from pagesight.documents.url import load_url

        return load_url(
            text,
            timeout=timeout,
            max_bytes=max_bytes,
            max_redirects=max_redirects,
            dpi=dpi,
            renderer=renderer,
            image_dir=image_dir,
            render=render,
            html_page_chars=html_page_chars,
            max_pixels=max_pixels,
            max_pages=max_pages,
            max_chars_per_page=max_chars_per_page,
            allow_private=allow_private,
        )
    if "\x00" in text:
        raise UnsupportedSourceError(text.replace("\x00", "\\x00"), "a path cannot contain a NUL character")
    path = Path(text)
    if path.is_dir():
        from pagesight.documents.folder import load_folder

        return load_folder(
            path,
            recursive=recursive,
            dpi=dpi,
            renderer=renderer,
            password=password,
            image_dir=image_dir,
            render=render,
            max_pixels=max_pixels,
            max_pages=max_pages,
            max_chars_per_page=max_chars_per_page,
        )
    suffix = path.suffix.lower()
    if suffix in PDF_EXTENSIONS:
        return load_pdf(
            path,
            dpi=dpi,
            renderer=renderer,
            password=password,
            image_dir=image_dir,
            render=render,
            source=text,
            max_pages=max_pages,
            max_pixels=max_pixels,
            max_chars_per_page=max_chars_per_page,
        )
    if suffix in IMAGE_EXTENSIONS:
        return load_image(path, max_pixels=max_pixels, image_dir=image_dir, source=text)
    if not path.exists():
        raise SourceNotFoundError(text, "no such file or folder; check the path")
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    raise UnsupportedSourceError(
        text,
        f"unsupported file type {suffix or '(no extension)'!r}; supported: {supported}, folders and "
        "http(s) URLs",
    )

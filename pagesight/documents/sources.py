"""Dispatch a source string (URL, PDF, image or folder) to the right loader."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pagesight.documents._common import reading, source_name
from pagesight.documents.images import DEFAULT_MAX_PIXELS, load_image
from pagesight.documents.ocr import OcrMode, OcrOptions
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
    deadline: float = 120.0,
    max_bytes: int = 64 * 2**20,
    max_redirects: int = 5,
    html_page_chars: int = 3000,
    recursive: bool = True,
    allow_private: bool | None = None,
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
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
        max_pages: PDFs, multi-frame images and HTML pages with more pages are refused (PDFs and
            images before any page is rendered, HTML as soon as the limit is passed).
        max_chars_per_page: page text beyond this is cut, with a warning.
        timeout: URLs: seconds to wait to connect and for each read.
        deadline: URLs: seconds the whole download may take, redirects included.
        max_bytes: largest URL body accepted.
        max_redirects: how many redirects a URL may follow.
        html_page_chars: about how many characters an HTML page's chunk holds.
        recursive: for folders, include sub-folders.
        allow_private: URLs: also fetch private, loopback and link-local addresses (trusted networks
            only); ``None`` reads the ``PAGESIGHT_ALLOW_PRIVATE_URLS`` environment variable.
        ocr: ``"auto"`` (pages without a usable text layer, images, and raster figures), ``"always"``
            or ``"never"``; see :func:`~pagesight.documents.load_pdf`.
        **ocr_keywords: ``ocr_lang``, ``ocr_engine``, ``ocr_figures``, ``ocr_dpi``, ``ocr_cache``,
            ``ocr_workers``, ``ocr_progress`` (see :func:`~pagesight.documents.ocr.ocr_options`).

    Raises:
        SourceNotFoundError: the path does not exist.
        UnsupportedSourceError: the extension or URL scheme is not supported (the message lists what
            is), or the name is not valid UTF-8 (see :func:`~pagesight.documents._common.source_name`).
        DocumentLoadError: whatever the chosen loader raises; any OS error reading the source
            (permission denied, a symlink loop, ...) names the path and what to do.
    """
    text = source_name(source)
    if is_url(text):
        from pagesight.documents.url import load_url

        return load_url(
            text,
            timeout=timeout,
            deadline=deadline,
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
            ocr=ocr,
            **ocr_keywords,
        )
    if "\x00" in text:
        raise UnsupportedSourceError(text.replace("\x00", "\\x00"), "a path cannot contain a NUL character")
    path = Path(text)
    with reading(text):
        is_dir = path.is_dir()
    if is_dir:
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
            ocr=ocr,
            **ocr_keywords,
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
            ocr=ocr,
            **ocr_keywords,
        )
    if suffix in IMAGE_EXTENSIONS:
        return load_image(
            path,
            max_pixels=max_pixels,
            image_dir=image_dir,
            source=text,
            max_pages=max_pages,
            max_chars_per_page=max_chars_per_page,
            ocr=ocr,
            **ocr_keywords,
        )
    with reading(text):
        exists = path.exists()
    if not exists:
        raise SourceNotFoundError(text, "no such file or folder; check the path")
    supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
    raise UnsupportedSourceError(
        text,
        f"unsupported file type {suffix or '(no extension)'!r}; supported: {supported}, folders and "
        "http(s) URLs",
    )

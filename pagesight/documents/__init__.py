"""Documents: the Page record and loaders for PDFs, URLs, images and folders.

Every loader returns an iterator of :class:`Page` (1-based page numbers, text, a PNG of the page,
its pixel size and the SHA-256 of the source's bytes) and raises a typed
:class:`~pagesight.errors.DocumentLoadError` subclass that names the file, page or URL.

Example:
    >>> from pagesight.documents import expand_sources, load_source
    >>> for source in expand_sources(["papers/", "https://example.org/a.pdf"]):  # doctest: +SKIP
    ...     for page in load_source(source):
    ...         print(page.source, page.page, page.image)
"""

from __future__ import annotations

from pagesight.documents._common import source_name
from pagesight.documents.folder import expand_sources, load_folder
from pagesight.documents.html import html_to_paragraphs, load_html_bytes, split_into_pages
from pagesight.documents.images import DEFAULT_MAX_PIXELS, load_image, load_image_bytes
from pagesight.documents.page import Page, page_id, sha256_bytes, sha256_file
from pagesight.documents.pdf import Renderer, load_pdf, load_pdf_bytes
from pagesight.documents.sources import SUPPORTED_EXTENSIONS, is_supported_file, is_url, load_source
from pagesight.documents.url import USER_AGENT, fetch_url, load_url

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "USER_AGENT",
    "Page",
    "Renderer",
    "expand_sources",
    "fetch_url",
    "html_to_paragraphs",
    "is_supported_file",
    "is_url",
    "load_folder",
    "load_html_bytes",
    "load_image",
    "load_image_bytes",
    "load_pdf",
    "load_pdf_bytes",
    "load_source",
    "load_url",
    "page_id",
    "sha256_bytes",
    "sha256_file",
    "source_name",
    "split_into_pages",
]

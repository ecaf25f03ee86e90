"""LangChain document loader: one ``Document`` per page of files, folders and URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document

from pagesight.integrations._loading import as_sources, load_pages

__all__ = ["PageLoader"]


class PageLoader(BaseLoader):
    """Pages of PDFs, images, folders and web pages as LangChain ``Document`` s, one per page.

    The loaders ``pagesight index`` uses, with its options and safety limits: PDFs (PyMuPDF,
    rendered to PNG), images, folders (their PDFs and images, sorted), and http(s) URLs (HTML,
    PDF or image by Content-Type; private addresses refused unless ``allow_private=True``).
    Pages without a text layer are OCR'd when an OCR engine is installed (``ocr="never"`` skips).

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,pdf]"

    Instantiate:
        .. code-block:: python

            from pagesight.integrations.langchain import PageLoader

            loader = PageLoader("report.pdf", image_dir="pages/")          # keep the page images
            loader = PageLoader(["papers/", "https://example.org/a.pdf"], dpi=120, ocr="never")

    Use:
        .. code-block:: python

            for doc in loader.lazy_load():    # one page at a time (a PDF page renders when reached)
                doc.page_content              # the page's text
                doc.metadata   # {"source": "report.pdf", "page": 1 (1-based), "page_label": "i"
                               #  (only when the PDF defines labels), "image": "pages/....png" or None,
                               #  "width": 816, "height": 1056, "content_hash": "<sha256 of the file>",
                               #  "text_source": "layer", "id": "<store id of the page>"}
            docs = loader.load()             # all of them

    Errors are typed (:class:`~pagesight.errors.DocumentLoadError` and its kinds) and name the
    source; ``skip_errors=True`` warns and goes on with the next source instead.
    """

    def __init__(
        self,
        sources: str | os.PathLike[str] | list[str | os.PathLike[str]],
        *,
        image_dir: str | os.PathLike[str] | None = None,
        recursive: bool = True,
        skip_errors: bool = False,
        **options: Any,
    ) -> None:
        """Describe what to load; nothing is read until :meth:`lazy_load`.

        Args:
            sources: a file, folder or http(s) URL, or a list of them.
            image_dir: where page images are written (``None``: a temporary folder removed when
                the interpreter exits).
            recursive: folders: include sub-folders.
            skip_errors: warn about a source that fails and go on, instead of raising.
            **options: for the loaders: ``dpi``, ``renderer``, ``password``, ``render``,
                ``max_pages``, ``max_pixels``, ``max_chars_per_page``, ``timeout``, ``deadline``,
                ``max_bytes``, ``allow_private``, ``ocr``, ... (see
                :func:`pagesight.documents.load_source`).

        Raises:
            ConfigurationError: no source, or a source that is not a path or a string.
        """
        self.sources = as_sources(sources)
        self.image_dir = image_dir
        self.recursive = recursive
        self.skip_errors = skip_errors
        self.options = options

    def lazy_load(self) -> Iterator[Document]:
        """One ``Document`` per page, source by source, page by page."""
        pages = load_pages(
            self.sources,
            image_dir=self.image_dir,
            recursive=self.recursive,
            skip_errors=self.skip_errors,
            **self.options,
        )
        for page, metadata in pages:
            yield Document(page_content=page.text, metadata=metadata, id=page.id)

"""LlamaIndex reader: a ``Document`` (``ImageDocument`` when rendered) per page of files, folders, URLs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument

from pagesight.integrations._loading import load_pages

__all__ = ["PageReader"]

# Kept out of the text an LLM or an embedder sees: paths, sizes and hashes are noise to both.
_HIDDEN_KEYS = ["image", "width", "height", "content_hash", "text_source", "id"]


class PageReader(BaseReader):
    """Pages of PDFs, images, folders and web pages as LlamaIndex documents, one per page.

    A page with a rendered image is an ``ImageDocument`` (``image_path`` = the PNG, the page's
    text in ``text``); a page without one (an HTML page, ``render=False``) a ``Document``. The
    loaders are ``pagesight index``'s, with its options and safety limits (see
    :class:`~pagesight.integrations.langchain.PageLoader`).

    Install:
        ``pip install "pagesight[llamaindex,pdf]"``

    Instantiate::

        from pagesight.integrations.llama_index import PageReader

        reader = PageReader(image_dir="pages/", dpi=120)

    Use::

        docs = reader.load_data("report.pdf")                        # a file, a folder or a URL
        docs = reader.load_data(["papers/", "https://example.org/a.pdf"])
        docs[0].metadata    # {"source", "page" (1-based), "page_label" (PDFs that define labels),
                            #  "image", "width", "height", "content_hash", "text_source", "id"}
        docs[0].image_path  # the page PNG (ImageDocument)

        from llama_index.core import VectorStoreIndex
        index = VectorStoreIndex.from_documents(docs)

    Errors are typed (:class:`~pagesight.errors.DocumentLoadError` and its kinds) and name the
    source; ``skip_errors=True`` warns and goes on with the next source instead. Only ``source``,
    ``page`` and ``page_label`` are shown to the LLM and the embedder.
    """

    def __init__(
        self,
        *,
        image_dir: str | os.PathLike[str] | None = None,
        recursive: bool = True,
        skip_errors: bool = False,
        **options: Any,
    ) -> None:
        """Describe how to load; nothing is read until :meth:`load_data`.

        Args:
            image_dir: where page images are written (``None``: a temporary folder removed when
                the interpreter exits).
            recursive: folders: include sub-folders.
            skip_errors: warn about a source that fails and go on, instead of raising.
            **options: for the loaders: ``dpi``, ``renderer``, ``password``, ``render``,
                ``max_pages``, ``max_pixels``, ``max_chars_per_page``, ``timeout``, ``deadline``,
                ``max_bytes``, ``allow_private``, ``ocr``, ... (see
                :func:`pagesight.documents.load_source`).
        """
        self.image_dir = image_dir
        self.recursive = recursive
        self.skip_errors = skip_errors
        self.options = options

    def lazy_load_data(
        self,
        file: str | os.PathLike[str] | list[str | os.PathLike[str]],
        extra_info: dict[str, Any] | None = None,
    ) -> Iterator[Document]:
        """One document per page of ``file`` (a file, folder or URL, or a list of them), in order.

        ``extra_info`` is added to every document's metadata (LlamaIndex readers' convention).
        """
        pages = load_pages(
            file,
            image_dir=self.image_dir,
            recursive=self.recursive,
            skip_errors=self.skip_errors,
            **self.options,
        )
        for page, metadata in pages:
            common: dict[str, Any] = {
                "id_": page.id,
                "text": page.text,
                "metadata": {**(extra_info or {}), **metadata},
                "excluded_llm_metadata_keys": list(_HIDDEN_KEYS),
                "excluded_embed_metadata_keys": list(_HIDDEN_KEYS),
            }
            if page.image is not None:
                yield ImageDocument(image_path=str(page.image), **common)
            else:
                yield Document(**common)

    def load_data(
        self,
        file: str | os.PathLike[str] | list[str | os.PathLike[str]],
        extra_info: dict[str, Any] | None = None,
    ) -> list[Document]:
        """Every page of ``file`` (a file, folder or URL, or a list of them) as a document.

        Raises:
            DocumentLoadError: a source cannot be read (unless ``skip_errors``), naming it.
        """
        return list(self.lazy_load_data(file, extra_info))

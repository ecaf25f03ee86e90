"""Pages of files, folders and URLs with their framework metadata, without framework imports.

:class:`~pagesight.integrations.langchain.PageLoader` and
:class:`~pagesight.integrations.llama_index.PageReader` both read sources through
:func:`load_pages`: the loaders ``pagesight index`` uses (:func:`pagesight.documents.load_source`
after :func:`pagesight.documents.expand_sources`), with the same options and the same safety
limits (page, pixel, byte, redirect and time limits, private addresses refused for URLs), and
errors typed (:class:`~pagesight.errors.DocumentLoadError` and its kinds, naming the source).

Example::

    for page, metadata in load_pages(["papers/", "https://example.org/a.pdf"], image_dir="pages/"):
        metadata   # {"source", "page", "page_label" (PDFs that define labels), "image", "width",
                   #  "height", "content_hash", "text_source", "id"}
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

from pagesight.errors import ConfigurationError, PagesightError
from pagesight.types import Page

__all__ = ["as_sources", "load_pages", "page_metadata"]


def as_sources(sources: Any) -> list[str]:
    """One source (path, URL) or several, as a list of strings.

    Raises:
        ConfigurationError: no source, or something that is not a path or a string.
    """
    given = [sources] if isinstance(sources, (str, bytes, os.PathLike)) else list(sources or [])
    if not given:
        raise ConfigurationError("give at least one source: a file, a folder or an http(s) URL")
    out = []
    for source in given:
        if not isinstance(source, (str, bytes, os.PathLike)):
            raise ConfigurationError(f"a source is a path or a URL, got {type(source).__name__}")
        out.append(os.fsdecode(source))
    return out


def page_metadata(page: Page, name: str, label: str | None = None) -> dict[str, Any]:
    """A page's metadata: ``source`` (``name``), ``page`` (1-based), ``page_label`` (when the PDF
    defines one), ``image`` (path string or ``None``), ``width``, ``height``, ``content_hash``,
    ``text_source`` and ``id`` (the store id the page would get)."""
    metadata: dict[str, Any] = {"source": name, "page": page.page}
    if label:
        metadata["page_label"] = label
    metadata.update(
        image=str(page.image) if page.image is not None else None,
        width=page.width,
        height=page.height,
        content_hash=page.content_hash,
        text_source=page.text_source,
        id=page.id,
    )
    return metadata


def load_pages(
    sources: Any,
    *,
    image_dir: str | os.PathLike[str] | None = None,
    recursive: bool = True,
    skip_errors: bool = False,
    **options: Any,
) -> Iterator[tuple[Page, dict[str, Any]]]:
    """Each page of ``sources`` with its metadata (see :func:`page_metadata`), source by source.

    Lazy: a source is read when the iterator reaches it, a PDF page rendered when it is reached.

    Args:
        sources: a file, folder or http(s) URL, or several (folders expand to the PDFs and images
            they hold, as ``pagesight index`` expands them).
        image_dir: where page images are written (``None``: a temporary folder removed when the
            interpreter exits).
        recursive: folders: include sub-folders.
        skip_errors: warn about a source that fails and go on, instead of raising.
        **options: for the loaders: ``dpi``, ``renderer``, ``password``, ``render``, ``max_pages``,
            ``max_pixels``, ``max_chars_per_page``, ``timeout``, ``deadline``, ``max_bytes``,
            ``max_redirects``, ``allow_private``, ``ocr``, ... (see
            :func:`pagesight.documents.load_source`).

    Raises:
        DocumentLoadError: a source cannot be read (its kinds: ``SourceNotFoundError``,
            ``UnsupportedSourceError``, ``EncryptedPDFError``, ``URLFetchError``, ...), unless
            ``skip_errors``.
        ConfigurationError: an option is wrong.
    """
    from pagesight.documents import expand_sources, is_url, load_source
    from pagesight.documents.url import redact_url

    given = as_sources(sources)
    for source in expand_sources(given, recursive=recursive):
        name = redact_url(source) if is_url(source) else source
        try:
            for page in load_source(source, image_dir=image_dir, recursive=recursive, **options):
                yield page, page_metadata(page, name, getattr(page, "page_label", None))
        except ConfigurationError:
            raise  # the same for every source
        except PagesightError as e:
            if not skip_errors:
                raise
            warnings.warn(f"{e}; skipped", stacklevel=3)

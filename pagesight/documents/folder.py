"""Folders: expand them into the supported files they hold, and load those files in order."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pagesight.documents._common import staging_dir
from pagesight.documents.images import DEFAULT_MAX_PIXELS
from pagesight.documents.page import Page
from pagesight.documents.pdf import DEFAULT_MAX_CHARS_PER_PAGE, DEFAULT_MAX_PAGES, Renderer
from pagesight.documents.sources import SUPPORTED_EXTENSIONS, is_supported_file, is_url, load_source
from pagesight.errors import DocumentLoadError, EmptyDocumentError, SourceNotFoundError

__all__ = ["expand_sources", "load_folder"]

logger = logging.getLogger(__name__)


def _folder_files(folder: Path, recursive: bool) -> list[str]:
    found: list[tuple[str, str]] = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            rel_root = os.path.relpath(root, folder)
            for name in files:
                if not name.startswith(".") and is_supported_file(name):
                    rel = name if rel_root == "." else os.path.join(rel_root, name)
                    found.append((rel, os.path.join(root, name)))
    else:
        for entry in os.scandir(folder):
            if not entry.name.startswith(".") and entry.is_file() and is_supported_file(entry.name):
                found.append((entry.name, entry.path))
    found.sort(key=lambda item: Path(item[0]).parts)
    return [full for _, full in found]


def expand_sources(sources: Sequence[str | os.PathLike[str]], *, recursive: bool = True) -> list[str]:
    """Replace each folder by the supported files inside it; keep URLs and other paths as given.

    Files are those ending in ``.pdf``, ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff`` or ``.webp``
    (any case), sorted by path; hidden files and hidden folders are skipped. A path that does not
    exist is kept, so the loader reports it. Duplicates are dropped (first occurrence kept).

    Example:
        >>> expand_sources(["scans/", "https://example.org/a.pdf"])  # doctest: +SKIP
        ['scans/a.pdf', 'scans/sub/b.png', 'https://example.org/a.pdf']

    Args:
        sources: paths, folders and URLs.
        recursive: look inside sub-folders too.
    """
    if isinstance(sources, (str, bytes)):
        raise TypeError("expand_sources takes a list of sources, not one string; wrap it in a list")
    out: list[str] = []
    seen: set[str] = set()
    for source in sources:
        text = os.fspath(source)
        if not is_url(text) and os.path.isdir(text):
            items = _folder_files(Path(text), recursive)
            if not items:
                logger.warning(
                    "%s holds no supported files (%s)", text, ", ".join(sorted(SUPPORTED_EXTENSIONS))
                )
        else:
            items = [text]
        for item in items:
            if item not in seen:
                seen.add(item)
                out.append(item)
    return out


def load_folder(
    path: str | os.PathLike[str],
    *,
    recursive: bool = True,
    dpi: float = 96,
    renderer: Renderer | None = None,
    password: str | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
) -> Iterator[Page]:
    """Load every supported file in a folder, file after file in sorted order.

    The folder is listed when this function is called; each file is opened (and checked) when the
    iterator reaches it, and a bad file raises its typed error then. To skip bad files instead,
    iterate over :func:`expand_sources` and call :func:`~pagesight.documents.load_source` per file.

    Args:
        path: the folder.
        recursive: include sub-folders (hidden ones are skipped).
        dpi: PDF render resolution.
        renderer: PDF renderer.
        password: password for encrypted PDFs (tried on each one).
        image_dir: folder for page PNGs; ``None`` makes one temporary folder for all files.
        render: ``False`` skips rendering PDF pages.
        max_pixels: pixel limit for images and rendered PDF pages.
        max_pages: PDFs with more pages are refused before any page is rendered.
        max_chars_per_page: PDF page text beyond this is cut, with a warning.

    Raises:
        SourceNotFoundError: the folder does not exist.
        DocumentLoadError: the path is not a folder.
        EmptyDocumentError: the folder holds no supported files.
    """
    folder = Path(path)
    source = os.fspath(path)
    if not folder.exists():
        raise SourceNotFoundError(source, "no such folder; check the path")
    if not folder.is_dir():
        raise DocumentLoadError(
            source, "is not a folder; load files with load_source / load_pdf / load_image"
        )
    files = _folder_files(folder, recursive)
    if not files:
        raise EmptyDocumentError(
            source, f"the folder holds no supported files ({', '.join(sorted(SUPPORTED_EXTENSIONS))})"
        )
    out_dir = staging_dir(image_dir)
    logger.debug("%s: %d files", source, len(files))
    return _iter_files(
        files,
        dpi=dpi,
        renderer=renderer,
        password=password,
        image_dir=out_dir,
        render=render,
        max_pixels=max_pixels,
        max_pages=max_pages,
        max_chars_per_page=max_chars_per_page,
    )


def _iter_files(
    files: list[str],
    *,
    dpi: float,
    renderer: Renderer | None,
    password: str | None,
    image_dir: Path,
    render: bool,
    max_pixels: int,
    max_pages: int,
    max_chars_per_page: int,
) -> Iterator[Page]:
    for file in files:
        yield from load_source(
            file,
            dpi=dpi,
            renderer=renderer,
            password=password,
            image_dir=image_dir,
            render=render,
            max_pixels=max_pixels,
            max_pages=max_pages,
            max_chars_per_page=max_chars_per_page,
        )

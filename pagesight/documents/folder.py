"""Folders: expand them into the supported files they hold, and load those files in order."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pagesight.documents._common import describe_os_error, reading, staging_dir
from pagesight.documents.images import DEFAULT_MAX_PIXELS
from pagesight.documents.ocr import OcrMode, OcrOptions
from pagesight.documents.page import Page
from pagesight.documents.pdf import DEFAULT_MAX_CHARS_PER_PAGE, DEFAULT_MAX_PAGES, Renderer
from pagesight.documents.sources import SUPPORTED_EXTENSIONS, is_supported_file, is_url, load_source
from pagesight.errors import DocumentLoadError, EmptyDocumentError, SourceNotFoundError

__all__ = ["STORE_MARKERS", "expand_sources", "is_store_folder", "load_folder"]

logger = logging.getLogger(__name__)


STORE_MARKERS = ("pagesight.lock",)
"""A folder holding one of these files is a pagesight store (as is one with ``chroma.sqlite3``
beside an ``images`` folder); folder expansion never descends into one."""


def is_store_folder(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` looks like a pagesight store (its page images must not be indexed)."""
    p = Path(folder)
    try:
        if any((p / name).exists() for name in STORE_MARKERS):
            return True
        return (p / "chroma.sqlite3").is_file() and (p / "images").is_dir()
    except OSError:
        return False


def _real(path: str | os.PathLike[str]) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):  # pragma: no cover - realpath does not raise on Linux
        return os.path.abspath(path)


def _inside(path: str, folders: frozenset[str]) -> str | None:
    """The folder of ``folders`` (real paths) that holds ``path`` (a real path), if any."""
    for folder in folders:
        if path == folder or path.startswith(folder.rstrip(os.sep) + os.sep):
            return folder
    return None


def _folder_files(folder: Path, recursive: bool, exclude: frozenset[str] = frozenset()) -> list[str]:
    """The supported files under ``folder``, sorted by their path below it.

    The walk is iterative (a folder thousands of levels deep is fine), never follows a symbolic
    link to a folder (so a link loop, or a link to ``/``, is not walked), skips hidden entries,
    pagesight stores and the folders in ``exclude`` (real paths), and skips (with a warning) a
    sub-folder it cannot read. Only an unreadable ``folder`` itself raises.

    Raises:
        DocumentLoadError: ``folder`` cannot be listed (permission denied, ...), naming it.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    source = os.fspath(folder)
    with reading(source):
        top = list(os.scandir(folder))
    stack: list[tuple[tuple[str, ...], list[os.DirEntry[str]]]] = [((), top)]
    while stack:
        rel, entries = stack.pop()
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                link_to_dir = not is_dir and entry.is_symlink() and entry.is_dir()
            except OSError:
                is_dir = link_to_dir = False
            if link_to_dir:
                logger.debug("%s: a link to a folder, not followed", entry.path)
                continue
            if is_dir:
                if not recursive:
                    continue
                held_by = _inside(_real(entry.path), exclude) if exclude else None
                if held_by is not None or is_store_folder(entry.path):
                    logger.warning(
                        "%s: skipped, it is %s",
                        entry.path,
                        "a pagesight store's folder" if held_by else "a pagesight store",
                    )
                    continue
                try:
                    children = list(os.scandir(entry.path))
                except OSError as e:
                    logger.warning("%s: skipped, %s", entry.path, describe_os_error(e))
                    continue
                stack.append(((*rel, entry.name), children))
            elif is_supported_file(entry.name):
                # files, links to files, and links that lead nowhere (the loader names the problem)
                if exclude and _inside(_real(entry.path), exclude) is not None:
                    logger.warning("%s: skipped, it is in a pagesight store's folder", entry.path)
                    continue
                found.append(((*rel, entry.name), entry.path))
    found.sort(key=lambda item: item[0])
    return [full for _, full in found]


def expand_sources(
    sources: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> list[str]:
    """Replace each folder by the supported files inside it; keep URLs and other paths as given.

    Files are those ending in ``.pdf``, ``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff`` or ``.webp``
    (any case), sorted by path; hidden files and hidden folders are skipped, as are pagesight
    stores (a folder with ``pagesight.lock``, or ``chroma.sqlite3`` beside ``images/``) and the
    folders in ``exclude``, each with a logged warning. Links to folders are not followed. A path
    that does not exist, or a folder that cannot be listed, is kept, so the loader reports it.
    Duplicates are dropped (first occurrence kept).

    Example:
        >>> expand_sources(["scans/", "https://example.org/a.pdf"])  # doctest: +SKIP
        ['scans/a.pdf', 'scans/sub/b.png', 'https://example.org/a.pdf']

    Args:
        sources: paths, folders and URLs.
        recursive: look inside sub-folders too.
        exclude: folders never to take files from (``ingest`` passes the store's folders, so
            indexing a folder that holds the store does not index the store's page images).
    """
    if isinstance(sources, (str, bytes)):
        raise TypeError("expand_sources takes a list of sources, not one string; wrap it in a list")
    skip = frozenset(_real(os.fspath(f)) for f in exclude)
    out: list[str] = []
    seen: set[str] = set()
    for source in sources:
        text = os.fsdecode(source)
        items = [text]
        if not is_url(text) and os.path.isdir(text):
            held_by = _inside(_real(text), skip)
            if held_by is not None or is_store_folder(text):
                logger.warning("%s: skipped, it is a pagesight store or inside one", text)
                items = []
            else:
                try:
                    items = _folder_files(Path(text), recursive, skip)
                except DocumentLoadError:
                    items = [text]  # unreadable: load_source raises the same error for this source
                else:
                    if not items:
                        logger.warning(
                            "%s holds no supported files (%s)", text, ", ".join(sorted(SUPPORTED_EXTENSIONS))
                        )
        elif skip and not is_url(text) and _inside(_real(text), skip) is not None:
            logger.warning("%s: skipped, it is in a pagesight store's folder", text)
            items = []
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
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
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
        ocr: OCR mode for every file (see :func:`~pagesight.documents.load_source`).
        **ocr_keywords: ``ocr_lang``, ``ocr_engine``, ... for every file.

    Raises:
        SourceNotFoundError: the folder does not exist.
        DocumentLoadError: the path is not a folder, is a pagesight store, or cannot be listed.
        EmptyDocumentError: the folder holds no supported files.
    """
    folder = Path(path)
    source = os.fspath(path)
    with reading(source):
        exists, is_dir = folder.exists(), folder.is_dir()
    if not exists:
        raise SourceNotFoundError(source, "no such folder; check the path")
    if not is_dir:
        raise DocumentLoadError(
            source, "is not a folder; load files with load_source / load_pdf / load_image"
        )
    if is_store_folder(folder):
        raise DocumentLoadError(
            source, "is a pagesight store; its page images are not documents (index the originals)"
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
        ocr=ocr,
        **ocr_keywords,
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
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
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
            ocr=ocr,
            **ocr_keywords,
        )

"""Load PDF files page by page: text layer plus a rendered PNG of each page.

Two renderers are supported:

- ``"pymupdf"`` (PyMuPDF / MuPDF, extra ``pdf``): fast, good text in reading order. **AGPL-3.0**
  (or a commercial Artifex licence); if you ship pagesight inside closed software, read its terms.
- ``"pdfium"`` (pypdfium2 / PDFium, extra ``pdfium``): Apache-2.0 / BSD-3-Clause, the permissive choice.

``renderer=None`` uses PyMuPDF when it imports, else pypdfium2.

Limits (each with a keyword to raise it):

- ``max_pages`` (default :data:`DEFAULT_MAX_PAGES`, 10,000): a PDF with more pages is refused with
  :class:`~pagesight.errors.DocumentLoadError` when it is opened, before any page is rendered.
- ``max_pixels`` (default :data:`~pagesight.documents.images.DEFAULT_MAX_PIXELS`, about 89.5
  million): a page whose rendering at ``dpi`` would exceed it raises
  :class:`~pagesight.errors.ImageTooLargeError` before rendering (lower ``dpi`` or raise the limit).
- ``max_chars_per_page`` (default :data:`DEFAULT_MAX_CHARS_PER_PAGE`, 200,000): longer page text
  is cut to the limit with a warning.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, cast

from pagesight._deps import require
from pagesight.documents._common import (
    DEFAULT_MAX_CHARS_PER_PAGE,
    DEFAULT_MAX_PAGES,
    atomic_write,
    check_file,
    check_limits,
    normalize_text,
    pixels_at_dpi,
    reading,
    staging_dir,
    too_many_pages,
)
from pagesight.documents.images import DEFAULT_MAX_PIXELS
from pagesight.documents.ocr import (
    OCR_FIGURE_MIN_FRACTION,
    OcrJob,
    OcrMode,
    OcrOptions,
    Region,
    blank_pages_note,
    needs_ocr,
    ocr_options,
    ocr_stage,
    page_list,
)
from pagesight.documents.page import Page, page_id, sha256_bytes, sha256_file
from pagesight.errors import (
    ConfigurationError,
    CorruptPDFError,
    DocumentLoadError,
    EmptyDocumentError,
    EncryptedPDFError,
    ImageTooLargeError,
    MissingDependencyError,
    NotAPDFError,
    PagesightError,
    SourceNotFoundError,
)
from pagesight.types import as_page_label

__all__ = [
    "DEFAULT_MAX_CHARS_PER_PAGE",
    "DEFAULT_MAX_PAGES",
    "Renderer",
    "load_pdf",
    "load_pdf_bytes",
    "is_pdf_bytes",
]

logger = logging.getLogger(__name__)

Renderer = Literal["pymupdf", "pdfium"]

# Neither MuPDF (through PyMuPDF) nor PDFium may be called from two threads at once; pages of
# different documents may be rendered from different threads, so every call goes through a lock.
_LOCKS = {"pymupdf": threading.RLock(), "pdfium": threading.RLock()}

_HEADER_WINDOW = 1024
_TAIL_WINDOW = 2048
_MAX_DPI = 1200
_EXTRA = {"pymupdf": "pdf", "pdfium": "pdfium"}
_MODULE = {"pymupdf": "pymupdf", "pdfium": "pypdfium2"}
_NO_SUCH_FILE = os.path.join(tempfile.gettempdir(), "pagesight-no-such-dir", "no-such-file.pdf").encode()


def is_pdf_bytes(head: bytes) -> bool:
    """True when ``%PDF-`` occurs in the first 1024 bytes (where PDF readers look for it)."""
    return b"%PDF-" in head[:_HEADER_WINDOW]


def load_pdf(
    path: str | os.PathLike[str],
    *,
    dpi: float = 96,
    renderer: Renderer | None = None,
    password: str | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    source: str | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
) -> Iterator[Page]:
    """Load a PDF file as pages, rendering one page at a time.

    The whole document is checked when this function is called (missing, empty, not a PDF, encrypted,
    damaged, no pages), so a bad file raises before any page is produced. Pages are then rendered
    lazily as the iterator is consumed; only the current page's pixels are in memory, so a
    2,000-page PDF streams in constant memory.

    Example:
        >>> for page in load_pdf("report.pdf", dpi=96):  # doctest: +SKIP
        ...     print(page.page, page.image, page.width, page.height)
        1 /tmp/pagesight-pages-x1y2/3f9c...-p1.png 816 1056

    Args:
        path: the PDF file.
        dpi: render resolution (pixels per inch); 96 gives 816×1056 for US Letter.
        renderer: ``"pymupdf"`` (AGPL-3.0, extra ``pdf``) or ``"pdfium"`` (pypdfium2, Apache-2.0/BSD,
            extra ``pdfium``); ``None`` picks PyMuPDF when installed, else pypdfium2.
        password: the user or owner password of an encrypted PDF.
        image_dir: folder for the page PNGs (``<content_hash[:32]>-p<N>.png``, written atomically);
            ``None`` makes a fresh temporary folder ``pagesight-pages-*`` that stays while the
            process runs (so the pages' ``image`` paths stay valid) and is removed at interpreter
            exit; pass a folder to keep the PNGs, or to free the disk space sooner.
        render: ``False`` skips rendering: ``image`` is ``None`` and ``width``/``height`` are the page
            size at ``dpi``.
        source: the name pages carry in ``Page.source``; defaults to ``str(path)``.
        max_pages: refuse a PDF with more pages than this (checked before anything is rendered).
        max_pixels: refuse to render a page into more pixels than this at ``dpi``.
        max_chars_per_page: cut a page's text to this many characters (with a warning).
        ocr: ``"auto"`` (default) OCRs pages whose text layer is missing or too thin
            (:func:`~pagesight.documents.ocr.needs_ocr`) and large raster figures on the others;
            ``"always"`` OCRs every page; ``"never"`` none. An :class:`~pagesight.documents.ocr.OcrOptions`
            is taken as is.
        **ocr_keywords: ``ocr_lang`` (Tesseract languages, ``"deu+eng"``), ``ocr_engine``
            (``"auto"``, ``"tesseract"``, ``"rapidocr"`` or an engine), ``ocr_figures`` (``False``:
            no figure OCR), ``ocr_dpi`` (default 150), ``ocr_cache`` (a folder), ``ocr_workers``,
            ``ocr_progress`` (see :func:`~pagesight.documents.ocr.ocr_options`).

    Returns:
        An iterator of :class:`Page`, page numbers 1-based.

    Raises:
        SourceNotFoundError: the path does not exist.
        DocumentLoadError: the path is a directory or unreadable; a page fails to render (``page`` set).
        EmptyDocumentError: the file is empty or has no pages.
        DocumentLoadError: more pages than ``max_pages`` (raised by this call, before any rendering).
        ImageTooLargeError: a page would render into more than ``max_pixels`` pixels (``page`` set).
        NotAPDFError: the bytes are not a PDF (an HTML error page saved as ``.pdf``, say).
        EncryptedPDFError: encrypted and no password, or the wrong one.
        CorruptPDFError: the file is damaged (truncated) and pages lost their content.
        MissingDependencyError: the renderer is not installed.
    """
    src = str(path) if source is None else source
    _check_dpi(dpi)
    _check_limits(max_pages, max_pixels, max_chars_per_page)
    name = _pick_renderer(renderer)
    file = check_file(path, src)
    with reading(src):
        with open(file, "rb") as f:
            head = f.read(_HEADER_WINDOW)
        _check_header(head, src)
        content_hash = sha256_file(file)
    stage = ocr_stage(ocr_options(ocr, **ocr_keywords), src)
    backend = _open(name, file, src, password, max_pages)
    limits = _Limits(max_pixels, max_chars_per_page)
    return stage(
        _prepare(
            backend,
            src,
            content_hash,
            dpi=dpi,
            image_dir=image_dir,
            render=render,
            limits=limits,
            ocr=stage.options,
        ),
        max_chars_per_page=max_chars_per_page,
    )


def load_pdf_bytes(
    data: bytes,
    *,
    source: str,
    dpi: float = 96,
    renderer: Renderer | None = None,
    password: str | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
) -> Iterator[Page]:
    """Load a PDF held in memory (a downloaded body, say); same checks and output as :func:`load_pdf`.

    Args:
        data: the PDF bytes.
        source: the name pages carry (the URL, for downloads).
        dpi: see :func:`load_pdf`.
        renderer: see :func:`load_pdf`.
        password: see :func:`load_pdf`.
        image_dir: see :func:`load_pdf`.
        render: see :func:`load_pdf`.
        max_pages: see :func:`load_pdf`.
        max_pixels: see :func:`load_pdf`.
        max_chars_per_page: see :func:`load_pdf`.
        ocr: see :func:`load_pdf`.
        **ocr_keywords: see :func:`load_pdf`.

    Returns:
        An iterator of :class:`Page`; ``content_hash`` is the SHA-256 of ``data``.
    """
    _check_dpi(dpi)
    _check_limits(max_pages, max_pixels, max_chars_per_page)
    name = _pick_renderer(renderer)
    if not data:
        raise EmptyDocumentError(source, "the document is empty (0 bytes)")
    _check_header(data, source)
    stage = ocr_stage(ocr_options(ocr, **ocr_keywords), source)
    backend = _open(name, bytes(data), source, password, max_pages)
    limits = _Limits(max_pixels, max_chars_per_page)
    return stage(
        _prepare(
            backend,
            source,
            sha256_bytes(data),
            dpi=dpi,
            image_dir=image_dir,
            render=render,
            limits=limits,
            ocr=stage.options,
        ),
        max_chars_per_page=max_chars_per_page,
    )


# --------------------------------------------------------------------------- checks


def _check_dpi(dpi: float) -> None:
    if not (0 < dpi <= _MAX_DPI):
        raise ConfigurationError(f"`dpi` must be greater than 0 and at most {_MAX_DPI}, got {dpi}")


class _Limits(NamedTuple):
    max_pixels: int
    max_chars_per_page: int


def _check_limits(max_pages: int, max_pixels: int, max_chars_per_page: int) -> None:
    check_limits(max_pages=max_pages, max_pixels=max_pixels, max_chars_per_page=max_chars_per_page)


def _check_header(head: bytes, source: str) -> None:
    if is_pdf_bytes(head):
        return
    start = head[:_HEADER_WINDOW].lstrip()[:15].lower()
    if start.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        what = "it holds HTML (an error or login page saved as .pdf?)"
    else:
        what = f"no %PDF- header in the first {_HEADER_WINDOW} bytes (starts with {head[:8]!r})"
    raise NotAPDFError(source, f"not a PDF: {what}; download the file again or check its type")


def _pick_renderer(renderer: str | None) -> Renderer:
    if renderer is not None:
        if renderer not in _MODULE:
            raise ConfigurationError(f"`renderer` must be 'pymupdf', 'pdfium' or None, got {renderer!r}")
        other: Renderer = "pdfium" if renderer == "pymupdf" else "pymupdf"
        try:
            require(_MODULE[renderer], _EXTRA[renderer])
        except MissingDependencyError as e:
            raise MissingDependencyError(
                f'{e}; or use renderer={other!r}, installed with: pip install "pagesight[{_EXTRA[other]}]"'
            ) from e
        return cast(Renderer, renderer)
    for name in ("pymupdf", "pdfium"):
        try:
            require(_MODULE[name], _EXTRA[name])
        except MissingDependencyError:
            continue
        return cast(Renderer, name)
    raise MissingDependencyError(
        'no PDF renderer is installed; install one: pip install "pagesight[pdf]" (PyMuPDF, AGPL-3.0) '
        'or pip install "pagesight[pdfium]" (pypdfium2, Apache-2.0/BSD)'
    )


# --------------------------------------------------------------------------- renderers


class _Backend(Protocol):
    renderer: str

    def page_count(self) -> int: ...
    def was_repaired(self) -> bool: ...
    def has_content(self, index: int) -> bool: ...
    def size_points(self, index: int) -> tuple[float, float]: ...
    def text(self, index: int) -> str: ...
    def label(self, index: int) -> str: ...
    def render_png(self, index: int, dpi: float, dest: Path) -> tuple[int, int]: ...
    def render_gray(self, index: int, dpi: float) -> Any: ...
    def image_rects(self, index: int) -> list[tuple[float, float, float, float]]: ...
    def close(self) -> None: ...


class _MuPDF:
    renderer = "pymupdf"

    def __init__(self, doc: Any) -> None:
        self.doc = doc

    def page_count(self) -> int:
        return int(self.doc.page_count)

    def was_repaired(self) -> bool:
        return bool(self.doc.is_repaired)

    def has_content(self, index: int) -> bool:
        page = self.doc.load_page(index)
        return bool(page.read_contents().strip()) or page.first_annot is not None

    def size_points(self, index: int) -> tuple[float, float]:
        rect = self.doc.load_page(index).rect
        return float(rect.width), float(rect.height)

    def text(self, index: int) -> str:
        pymupdf = require("pymupdf", "pdf")
        # Expand ligatures (so "ﬁ" is searchable as "fi") and join words hyphenated at line ends.
        flags = (pymupdf.TEXTFLAGS_BLOCKS & ~pymupdf.TEXT_PRESERVE_LIGATURES) | pymupdf.TEXT_DEHYPHENATE
        blocks = self.doc.load_page(index).get_text("blocks", flags=flags)
        return "\n\n".join(normalize_text(b[4]) for b in blocks if b[6] == 0 and b[4].strip())

    def label(self, index: int) -> str:
        return str(self.doc.load_page(index).get_label() or "")

    def render_png(self, index: int, dpi: float, dest: Path) -> tuple[int, int]:
        pix = self.doc.load_page(index).get_pixmap(dpi=dpi, alpha=False)
        png = pix.tobytes("png")
        atomic_write(dest, lambda f: f.write(png))
        return int(pix.width), int(pix.height)

    def render_gray(self, index: int, dpi: float) -> Any:
        from PIL import Image

        pymupdf = require("pymupdf", "pdf")
        pix = self.doc.load_page(index).get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
        return Image.frombytes("L", (pix.width, pix.height), pix.samples)

    def image_rects(self, index: int) -> list[tuple[float, float, float, float]]:
        pymupdf = require("pymupdf", "pdf")
        page = self.doc.load_page(index)
        rect = page.rect
        turn = page.rotation_matrix  # the boxes are unrotated; the render is turned by /Rotate
        out = []
        for info in page.get_image_info():
            x0, y0, x1, y1 = pymupdf.Rect(info["bbox"]) * turn
            x0, y0 = max(x0, rect.x0), max(y0, rect.y0)
            x1, y1 = min(x1, rect.x1), min(y1, rect.y1)
            if x1 > x0 and y1 > y0:
                out.append((x0 - rect.x0, y0 - rect.y0, x1 - rect.x0, y1 - rect.y0))
        return out

    def close(self) -> None:
        self.doc.close()


def _turned(
    box: tuple[float, float, float, float], rotation: int, width: float, height: float
) -> tuple[float, float, float, float]:
    """``box`` on an unrotated ``width`` x ``height`` page (top down), once the page is turned
    clockwise by ``rotation`` degrees (``/Rotate``), as renderers show it."""
    x0, y0, x1, y1 = box
    if rotation == 90:
        return height - y1, x0, height - y0, x1
    if rotation == 180:
        return width - x1, height - y1, width - x0, height - y0
    if rotation == 270:
        return y0, width - x1, y1, width - x0
    return box


class _Pdfium:
    renderer = "pdfium"

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.raw = require("pypdfium2.raw", "pdfium")

    def page_count(self) -> int:
        return len(self.doc)

    def was_repaired(self) -> bool:
        return not self.raw.FPDF_DocumentHasValidCrossReferenceTable(self.doc.raw)

    def has_content(self, index: int) -> bool:
        page = self.doc[index]
        try:
            return bool(self.raw.FPDFPage_CountObjects(page.raw) or self.raw.FPDFPage_GetAnnotCount(page.raw))
        finally:
            page.close()

    def size_points(self, index: int) -> tuple[float, float]:
        page = self.doc[index]
        try:
            w, h = page.get_size()
            return float(w), float(h)
        finally:
            page.close()

    def text(self, index: int) -> str:
        page = self.doc[index]
        try:
            textpage = page.get_textpage()
            try:
                return normalize_text(textpage.get_text_bounded())
            finally:
                textpage.close()
        finally:
            page.close()

    def label(self, index: int) -> str:
        return str(self.doc.get_page_label(index) or "")

    def render_png(self, index: int, dpi: float, dest: Path) -> tuple[int, int]:
        page = self.doc[index]
        try:
            # pypdfium2 sizes the bitmap with ceil(points * scale): shave float noise so that
            # 216 pt at 150 dpi gives 450 px (as MuPDF and render=False do), not 451.
            bitmap = page.render(scale=dpi / 72.0 * (1 - 1e-7), draw_annots=True)
            image = bitmap.to_pil().convert("RGB")
            bitmap.close()
        finally:
            page.close()
        atomic_write(dest, lambda f: image.save(f, format="PNG", compress_level=3))
        return image.width, image.height

    def render_gray(self, index: int, dpi: float) -> Any:
        page = self.doc[index]
        try:
            bitmap = page.render(scale=dpi / 72.0 * (1 - 1e-7), grayscale=True)
            image = bitmap.to_pil().convert("L")
            bitmap.close()
        finally:
            page.close()
        return image

    def image_rects(self, index: int) -> list[tuple[float, float, float, float]]:
        page = self.doc[index]
        try:
            cx0, cy0, cx1, cy1 = (float(v) for v in page.get_cropbox())
            rotation = int(page.get_rotation()) % 360
            out = []
            for obj in page.get_objects(filter=[self.raw.FPDF_PAGEOBJ_IMAGE], max_depth=3):
                left, bottom, right, top = obj.get_bounds()
                if right > left and top > bottom:
                    # PDF space (y up) -> the unrotated page, top down -> turned as the render is
                    box = (float(left) - cx0, cy1 - float(top), float(right) - cx0, cy1 - float(bottom))
                    out.append(_turned(box, rotation, cx1 - cx0, cy1 - cy0))
            return out
        finally:
            page.close()

    def close(self) -> None:
        self.doc.close()


def _open(
    name: Renderer, file_or_data: Path | bytes, source: str, password: str | None, max_pages: int
) -> _Backend:
    with _LOCKS[name]:
        backend: _Backend = (
            _open_mupdf(file_or_data, source, password)
            if name == "pymupdf"
            else _open_pdfium(file_or_data, source, password)
        )
        try:
            _check_document(backend, source, max_pages)
        except EmptyDocumentError as e:
            repaired = backend.was_repaired()
            backend.close()
            if not _ends_with_eof(file_or_data):
                raise _truncated(source, "no pages can be read and it does not end with %%EOF") from e
            if repaired:
                raise _truncated(source, f"{backend.renderer} repaired it and found no pages") from e
            raise
        except BaseException:
            backend.close()
            raise
    return backend


def _ends_with_eof(file_or_data: Path | bytes) -> bool:
    """Whether ``%%EOF`` is in the last 2 KiB, where every complete PDF has it (a cut download does not)."""
    if isinstance(file_or_data, bytes):
        return b"%%EOF" in file_or_data[-_TAIL_WINDOW:]
    try:
        with open(file_or_data, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - _TAIL_WINDOW))
            return b"%%EOF" in f.read()
    except OSError:
        return True  # cannot tell: keep the renderer's own verdict


def _truncated(source: str, what: str) -> CorruptPDFError:
    return CorruptPDFError(
        source,
        f"the PDF is damaged or truncated ({what}); download or copy it again, or export it again "
        "from the program that made it",
    )


def _encrypted(source: str, password: str | None) -> EncryptedPDFError:
    if password is None:
        return EncryptedPDFError(source, "the PDF is encrypted; pass password= to open it")
    return EncryptedPDFError(source, "the PDF is encrypted and the password is wrong")


def _open_mupdf(file_or_data: Path | bytes, source: str, password: str | None) -> _MuPDF:
    pymupdf = require("pymupdf", "pdf")
    try:
        if isinstance(file_or_data, bytes):
            doc = pymupdf.open(stream=file_or_data, filetype="pdf")
        else:
            doc = pymupdf.open(str(file_or_data), filetype="pdf")
    except pymupdf.EmptyFileError as e:
        raise EmptyDocumentError(source, "the file is empty") from e
    except pymupdf.FileNotFoundError as e:
        raise SourceNotFoundError(source, "no such file; check the path") from e
    except (pymupdf.FileDataError, RuntimeError) as e:
        raise CorruptPDFError(
            source, f"MuPDF cannot open it ({e}); the file is damaged or truncated, download it again"
        ) from e
    if not doc.is_pdf:
        doc.close()
        raise NotAPDFError(source, "not a PDF (MuPDF reads it as another format); check the file")
    if doc.needs_pass and (password is None or not doc.authenticate(password)):
        doc.close()
        raise _encrypted(source, password)
    return _MuPDF(doc)


def _open_pdfium(file_or_data: Path | bytes, source: str, password: str | None) -> _Pdfium:
    pdfium = require("pypdfium2", "pdfium")
    raw = require("pypdfium2.raw", "pdfium")
    # PDFium's last-error code is global and some failures (an empty page tree) leave it untouched,
    # so a stale code from an earlier document would be reported. Set it to "file error" first: a
    # file we have already read (or bytes) cannot fail with that, so seeing it again means "no code".
    raw.FPDF_LoadDocument(_NO_SUCH_FILE, None)
    try:
        doc = pdfium.PdfDocument(
            file_or_data if isinstance(file_or_data, bytes) else str(file_or_data), password=password
        )
    except FileNotFoundError as e:
        raise SourceNotFoundError(source, "no such file; check the path") from e
    except pdfium.PdfiumError as e:
        code = getattr(e, "err_code", None)
        if code == raw.FPDF_ERR_PASSWORD:
            raise _encrypted(source, password) from e
        if code in (raw.FPDF_ERR_SUCCESS, raw.FPDF_ERR_FILE):  # no code: PDFium found no pages
            if not _ends_with_eof(file_or_data):
                raise _truncated(source, "no pages can be read and it does not end with %%EOF") from e
            raise EmptyDocumentError(source, "the PDF has no pages (or its page tree is unreadable)") from e
        raise CorruptPDFError(
            source, f"PDFium cannot open it ({e}); the file is damaged or truncated, download it again"
        ) from e
    return _Pdfium(doc)


def _check_document(backend: _Backend, source: str, max_pages: int) -> None:
    """Whole-document checks that must pass before the first page is produced."""
    n = backend.page_count()
    if n == 0:
        raise EmptyDocumentError(source, "the PDF has no pages")
    if n > max_pages:
        raise too_many_pages(source, "the PDF has", n, max_pages)
    if not backend.was_repaired():
        return
    blank = [i + 1 for i in range(n) if not backend.has_content(i)]
    if len(blank) == n:
        raise CorruptPDFError(
            source,
            f"the PDF is damaged (truncated?): {backend.renderer} repaired it into {n} blank page(s); "
            "download it again",
        )
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (", ..." if len(blank) > 10 else "")
        raise CorruptPDFError(
            source,
            f"the PDF is damaged (truncated?): after repair {len(blank)} of {n} pages are blank "
            f"(pages {shown}); download it again",
        )
    warnings.warn(
        f"{source} was damaged and repaired by {backend.renderer}; all {n} pages have content, "
        "but check the result",
        stacklevel=4,
    )


# --------------------------------------------------------------------------- pages


def _prepare(
    backend: _Backend,
    source: str,
    content_hash: str,
    *,
    dpi: float,
    image_dir: str | os.PathLike[str] | None,
    render: bool,
    limits: _Limits,
    ocr: OcrOptions,
) -> Iterator[OcrJob]:
    try:
        out_dir = staging_dir(image_dir) if render else None
    except OSError as e:
        backend.close()
        raise DocumentLoadError(source, f"cannot create the image folder {image_dir}: {e}") from e
    return _pages(backend, source, content_hash, dpi=dpi, out_dir=out_dir, limits=limits, ocr=ocr)


def _pages(
    backend: _Backend,
    source: str,
    content_hash: str,
    *,
    dpi: float,
    out_dir: Path | None,
    limits: _Limits,
    ocr: OcrOptions,
) -> Iterator[OcrJob]:
    lock = _LOCKS["pymupdf" if backend.renderer == "pymupdf" else "pdfium"]
    try:
        with lock:
            n = backend.page_count()
        logger.debug("%s: %d pages with %s at %s dpi", source, n, backend.renderer, dpi)
        blank: list[int] = []  # no text and nothing drawn: kept, summarized once per source
        textless: list[int] = []  # no text layer, something drawn, no OCR (ocr="never")
        for index in range(n):
            number = index + 1
            try:
                with lock:
                    text = backend.text(index)
                    label = _page_label(backend, index, source, number)
                    image: Path | None = None
                    w_pt, h_pt = backend.size_points(index)
                    width, height = pixels_at_dpi(w_pt, dpi), pixels_at_dpi(h_pt, dpi)
                    if out_dir is not None:
                        _check_pixels(source, number, width, height, dpi, limits.max_pixels)
                        image = out_dir / f"{page_id(content_hash, number)}.png"
                        width, height = backend.render_png(index, dpi, image)
                    empty = not text.strip() and _looks_blank(backend, index, (w_pt, h_pt))
                    needed, regions = (
                        (False, ())  # nothing to OCR on a blank page
                        if empty
                        else _ocr_regions(backend, index, text, (w_pt, h_pt), width, ocr, limits)
                    )
            except PagesightError:
                raise
            except Exception as e:
                raise DocumentLoadError(
                    source,
                    f"{backend.renderer} failed on this page ({type(e).__name__}: {e}); "
                    "a lower dpi= helps if the page is huge",
                    page=number,
                ) from e
            if len(text) > limits.max_chars_per_page:
                warnings.warn(
                    f"{source} page {number}: text of {len(text):,} characters cut to "
                    f"max_chars_per_page={limits.max_chars_per_page:,}; raise the limit to keep it all",
                    stacklevel=2,
                )
                text = text[: limits.max_chars_per_page]
            if empty:
                blank.append(number)
            elif not text and ocr.mode == "never":
                textless.append(number)
            page = Page(
                source=source,
                page=number,
                text=text,
                image=image,
                width=width,
                height=height,
                content_hash=content_hash,
                page_label=label,
            )
            yield OcrJob(page, regions, needed)
        if blank:
            warnings.warn(blank_pages_note(source, blank), stacklevel=2)
        if textless:
            warnings.warn(
                f"{source}: {len(textless)} page(s) have no text layer ({page_list(textless)}); "
                "indexed as images only (OCR is off)",
                stacklevel=2,
            )
    finally:
        with lock:
            backend.close()


_BLANK_DPI = 36
_BLANK_MAX_PIXELS = 1_000_000
_BLANK_INK_LEVELS = 32  # grey levels from the background colour that count as ink
_BLANK_INK_SHARE = 0.001  # a page with less ink than this share of its pixels looks blank


def _looks_blank(backend: _Backend, index: int, size_pt: tuple[float, float]) -> bool:
    """Whether a page without text is visually blank: no content at all, or a low-resolution
    grey rendering where under 0.1 % of the pixels differ from the background by more than
    32 levels (a separator page, a scan of an empty sheet)."""
    if not backend.has_content(index):
        return True
    w_pt, h_pt = size_pt
    dpi = max(1, int(min(_BLANK_DPI, 72.0 * (_BLANK_MAX_PIXELS / max(w_pt * h_pt, 1e-6)) ** 0.5)))
    histogram = backend.render_gray(index, dpi).histogram()[:256]
    background = max(range(256), key=histogram.__getitem__)
    ink = sum(c for level, c in enumerate(histogram) if abs(level - background) > _BLANK_INK_LEVELS)
    return ink <= _BLANK_INK_SHARE * max(sum(histogram), 1)


def _page_label(backend: _Backend, index: int, source: str, number: int) -> str | None:
    """The page's printed label from the PDF's page labels (``None``: none defined, or unreadable)."""
    try:
        return as_page_label(backend.label(index))
    except Exception as e:  # a broken /PageLabels tree costs the label, not the page
        logger.info("%s page %d: cannot read its page label (%s)", source, number, e)
        return None


def _ocr_regions(
    backend: _Backend,
    index: int,
    text: str,
    size_pt: tuple[float, float],
    width: int,
    ocr: OcrOptions,
    limits: _Limits,
) -> tuple[bool, tuple[Region, ...]]:
    """Whether the page needs OCR, and the images to OCR: the whole page, or its large raster figures."""
    if ocr.mode == "never":
        return False, ()
    w_pt, h_pt = size_pt
    rects = backend.image_rects(index)
    page_area = max(w_pt * h_pt, 1e-6)
    coverage = min(1.0, sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects) / page_area)
    needed = ocr.mode == "always" or needs_ocr(text, w_pt, h_pt, coverage)
    if ocr.engine is None:  # nothing installed: the stage reports the pages that needed OCR
        return needed, ()
    # OCR resolution, lowered when the page is so large that it would exceed the pixel limit
    dpi = min(ocr.dpi, 72.0 * (limits.max_pixels / page_area) ** 0.5)
    k = dpi / 72.0
    if needed:
        image = backend.render_gray(index, dpi)
        image.info["dpi"] = (dpi, dpi)  # for the engine: the resolution the page was rendered at
        return True, (Region("page", image, width / max(image.width, 1)),)
    if not ocr.figures:
        return False, ()
    figures = [
        r
        for r in rects
        if (r[2] - r[0]) * (r[3] - r[1]) >= OCR_FIGURE_MIN_FRACTION * page_area
        and (r[2] - r[0]) * k >= 64
        and (r[3] - r[1]) * k >= 24
    ]
    if not figures:
        return False, ()
    image = backend.render_gray(index, dpi)
    image.info["dpi"] = (dpi, dpi)  # kept by the crops
    scale = width / max(image.width, 1)
    regions = []
    for x0, y0, x1, y1 in figures:
        right, bottom = min(image.width, int(x1 * k) + 1), min(image.height, int(y1 * k) + 1)
        box = (int(x0 * k), int(y0 * k), right, bottom)
        regions.append(Region("figure", image.crop(box), scale, box[0] * scale, box[1] * scale))
    return False, tuple(regions)


def _check_pixels(source: str, number: int, width: int, height: int, dpi: float, max_pixels: int) -> None:
    """Refuse to render a page into more than ``max_pixels`` pixels (checked from its size)."""
    if width * height <= max_pixels:
        return
    raise ImageTooLargeError(
        source,
        f"rendering this page at {dpi:g} dpi would give {width}x{height} = {width * height:,} pixels, "
        f"more than max_pixels={max_pixels:,}; lower dpi= or raise max_pixels=",
        page=number,
    )

"""Load image files (PNG, JPEG, TIFF, WebP) as pages: one per image, one per frame of a multi-page TIFF."""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from pagesight.documents._common import (
    DEFAULT_MAX_CHARS_PER_PAGE,
    DEFAULT_MAX_PAGES,
    atomic_write,
    check_file,
    check_limits,
    os_error,
    reading,
    staging_dir,
    too_many_pages,
)
from pagesight.documents.ocr import OcrJob, OcrMode, OcrOptions, Region, ocr_options, ocr_stage
from pagesight.documents.page import Page, page_id, sha256_bytes, sha256_file
from pagesight.errors import (
    ConfigurationError,
    DocumentLoadError,
    EmptyDocumentError,
    ImageTooLargeError,
    PagesightError,
)

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_FORMATS", "load_image", "load_image_bytes", "sniff_image_format"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 89_478_485
"""Pillow's own default limit (about 9,459 × 9,459 pixels)."""

IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")
"""Pillow openers used (JPEG also reads phones' multi-picture JPEGs; their first picture is kept)."""

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
)


def sniff_image_format(head: bytes) -> str | None:
    """Return ``"PNG"``, ``"JPEG"``, ``"TIFF"`` or ``"WEBP"`` from a file's first bytes, else ``None``."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image_dir: str | os.PathLike[str] | None = None,
    source: str | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
) -> Iterator[Page]:
    """Load an image file as pages (one per image; one per frame of a multi-page TIFF).

    Each image is converted to RGB (transparency over white, EXIF rotation applied) and saved as
    PNG in ``image_dir``. ``text`` is ``""``. The file is checked when this function is called;
    frames are decoded one at a time as the iterator is consumed.

    Example:
        >>> [(p.page, p.width, p.height) for p in load_image("scan.tiff")]  # doctest: +SKIP
        [(1, 2480, 3508), (2, 2480, 3508)]

    Args:
        path: a PNG, JPEG, TIFF or WebP file.
        max_pixels: refuse images (each frame) with more pixels than this, read from the header
            before decoding. Pillow's ``Image.MAX_IMAGE_PIXELS`` guard also applies.
        image_dir: folder for the PNGs (``<content_hash[:32]>-p<N>.png``); ``None`` makes a temporary
            one, removed at interpreter exit (see :func:`~pagesight.documents.load_pdf`).
        source: the name pages carry in ``Page.source``; defaults to ``str(path)``.
        max_pages: refuse a multi-page TIFF with more frames than this (read from the file before
            any frame is decoded).
        max_chars_per_page: cut a page's OCR text to this many characters (with a warning).
        ocr: ``"auto"`` or ``"always"`` (an image has no text layer, so both OCR every page when an
            engine is installed) or ``"never"``; see :func:`~pagesight.documents.load_pdf` for the
            ``ocr_*`` keywords.
        **ocr_keywords: ``ocr_lang``, ``ocr_engine``, ``ocr_cache``, ... (see
            :func:`~pagesight.documents.ocr.ocr_options`).

    Raises:
        SourceNotFoundError: the path does not exist.
        EmptyDocumentError: the file is empty.
        ImageTooLargeError: an image exceeds ``max_pixels`` (a possible decompression bomb).
        DocumentLoadError: not an image in a supported format, the pixel data is damaged, more
            frames than ``max_pages``, or an OS error reading the file (naming it).
    """
    src = str(path) if source is None else source
    file = check_file(path, src)
    with reading(src):
        content_hash = sha256_file(file)
    check_limits(max_chars_per_page=max_chars_per_page)
    stage = ocr_stage(ocr_options(ocr, **ocr_keywords), src)
    pages = _load(file, src, content_hash, max_pixels=max_pixels, image_dir=image_dir, max_pages=max_pages)
    return stage(image_ocr_jobs(pages, stage.options), max_chars_per_page=max_chars_per_page)


def load_image_bytes(
    data: bytes,
    *,
    source: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image_dir: str | os.PathLike[str] | None = None,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    ocr: OcrMode | OcrOptions = "auto",
    **ocr_keywords: Any,
) -> Iterator[Page]:
    """Load an image held in memory (a downloaded body, say); see :func:`load_image`.

    Args:
        data: the encoded image bytes.
        source: the name pages carry (the URL, for downloads).
        max_pixels: see :func:`load_image`.
        image_dir: see :func:`load_image`.
        max_pages: see :func:`load_image`.
        max_chars_per_page: see :func:`load_image`.
        ocr: see :func:`load_image`.
        **ocr_keywords: see :func:`load_image`.
    """
    if not data:
        raise EmptyDocumentError(source, "the image is empty (0 bytes)")
    check_limits(max_chars_per_page=max_chars_per_page)
    stage = ocr_stage(ocr_options(ocr, **ocr_keywords), source)
    pages = _load(
        io.BytesIO(data),
        source,
        sha256_bytes(data),
        max_pixels=max_pixels,
        image_dir=image_dir,
        max_pages=max_pages,
    )
    return stage(image_ocr_jobs(pages, stage.options), max_chars_per_page=max_chars_per_page)


def _too_large(source: str, width: int, height: int, limit: int, frame: int | None) -> ImageTooLargeError:
    return ImageTooLargeError(
        source,
        f"image is {width}×{height} = {width * height:,} pixels, over the limit of {limit:,} "
        "(a possible decompression bomb); if you trust the file, raise it with max_pixels=",
        page=frame,
    )


def _open(fp: Path | IO[bytes], source: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that; our own max_pixels check decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageTooLargeError(
            source,
            f"image is {size}, over the limit of {min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or 0)):,} "
            "(a possible decompression bomb); if you trust the file, raise it with max_pixels= "
            "(and PIL.Image.MAX_IMAGE_PIXELS, which Pillow enforces at twice its value)",
        ) from e
    except UnidentifiedImageError as e:
        raise DocumentLoadError(
            source, "not an image pagesight reads (supported: PNG, JPEG, TIFF, WebP); check the file"
        ) from e
    except OSError as e:
        if e.errno is not None:  # from the file system (permission denied, ...), not from Pillow
            raise os_error(source, e) from e
        raise DocumentLoadError(source, f"cannot read the image: {e}") from e
    except Exception as e:  # Pillow lets ValueError (huge text chunks), SyntaxError, ... escape
        raise _damaged(source, e, None) from e


def _damaged(source: str, error: Exception, page: int | None) -> DocumentLoadError:
    """The typed error for an exception Pillow raised while reading ``source``."""
    text = str(error).lower()
    if isinstance(error, ValueError) and ("decompressed data too large" in text or "text chunks" in text):
        from PIL import PngImagePlugin

        return ImageTooLargeError(
            source,
            "its text chunks (zTXt/iTXt) inflate beyond Pillow's limits of "
            f"{PngImagePlugin.MAX_TEXT_CHUNK:,} bytes a chunk and {PngImagePlugin.MAX_TEXT_MEMORY:,} "
            "in all (a possible decompression bomb); if you trust the file, strip its metadata "
            "(e.g. `mogrify -strip`) or raise PIL.PngImagePlugin.MAX_TEXT_CHUNK / MAX_TEXT_MEMORY",
            page=page,
        )
    return DocumentLoadError(source, f"the image data is damaged: {type(error).__name__}: {error}", page=page)


def _load(
    fp: Path | IO[bytes],
    source: str,
    content_hash: str,
    *,
    max_pixels: int,
    image_dir: str | os.PathLike[str] | None,
    max_pages: int = DEFAULT_MAX_PAGES,
) -> Iterator[Page]:
    if max_pixels < 1:
        raise ConfigurationError(f"`max_pixels` must be at least 1, got {max_pixels}")
    check_limits(max_pages=max_pages)
    im = _open(fp, source, max_pixels)
    try:
        frames = int(getattr(im, "n_frames", 1)) if im.format == "TIFF" else 1
        if frames > max_pages:  # n_frames comes from the file's directory: nothing decoded yet
            raise too_many_pages(source, f"the {im.format} has", frames, max_pages)
        for i in range(frames):
            if frames > 1:
                im.seek(i)
            w, h = im.size
            if w * h > max_pixels:
                raise _too_large(source, w, h, max_pixels, i + 1 if frames > 1 else None)
        if frames > 1:
            im.seek(0)
        out_dir = staging_dir(image_dir)
    except PagesightError:
        im.close()
        raise
    except Exception as e:
        im.close()
        raise _damaged(source, e, None) from e
    return _frames(im, frames, source, content_hash, out_dir)


def _frames(im: Image.Image, frames: int, source: str, content_hash: str, out_dir: Path) -> Iterator[Page]:
    with im:
        for i in range(frames):
            number = i + 1
            try:
                with warnings.catch_warnings():  # sizes were checked against max_pixels above
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    im.seek(i)
                    rgb = _to_rgb(im)
                dest = out_dir / f"{page_id(content_hash, number)}.png"
                keep = _dpi(im.info.get("dpi"))  # the resolution goes on to OCR (Tesseract's --dpi)
                atomic_write(dest, functools.partial(rgb.save, format="PNG", compress_level=3, **keep))
            except Image.DecompressionBombError as e:
                raise ImageTooLargeError(
                    source,
                    f"{e}; raise max_pixels= and PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
                    page=number if frames > 1 else None,
                ) from e
            except OSError as e:
                if e.errno is not None:  # writing the page image failed: not the source's fault
                    raise DocumentLoadError(
                        source,
                        f"cannot write its page image into {out_dir}: {e.strerror or e}; check that "
                        "folder's free space and permissions",
                        page=number if frames > 1 else None,
                    ) from e
                raise _damaged(source, e, number if frames > 1 else None) from e
            except Exception as e:
                raise _damaged(source, e, number if frames > 1 else None) from e
            yield Page(
                source=source,
                page=number,
                text="",
                image=dest,
                width=rgb.width,
                height=rgb.height,
                content_hash=content_hash,
            )


def _dpi(value: object) -> dict[str, Any]:
    """``{"dpi": (x, y)}`` for :meth:`PIL.Image.Image.save` if ``value`` is a sane resolution, else ``{}``."""
    if not isinstance(value, tuple) or len(value) != 2:
        return {}
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return {}
    return {"dpi": (x, y)} if all(math.isfinite(v) and 1 <= v <= 100_000 for v in (x, y)) else {}


def image_ocr_jobs(pages: Iterator[Page], options: OcrOptions) -> Iterator[OcrJob]:
    """An image page has no text layer: unless OCR is off, its whole image is OCR'd."""
    try:
        for page in pages:
            if options.mode == "never" or page.image is None:
                yield OcrJob(page)
            elif options.engine is None:
                yield OcrJob(page, (), True)  # nothing installed: the stage warns once
            else:
                yield OcrJob(page, (Region("page", Image.open(page.image), 1.0),), True)
    finally:
        pages.close()  # type: ignore[attr-defined]


def _to_rgb(im: Image.Image) -> Image.Image:
    """Decode the current frame into RGB: EXIF orientation applied, transparency composited over white."""
    im.load()
    frame = ImageOps.exif_transpose(im) or im
    if frame.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        extrema = frame.getextrema()
        lo, hi = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        frame = frame.point(lambda v: (v - lo) * scale).convert("L")
    if frame.mode == "P" and "transparency" in frame.info:
        frame = frame.convert("RGBA")
    if frame.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return frame.convert("RGB")

"""Pages without a text layer, made in the tests: image-only PDFs, photographed pages, raster figures."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import threading
from collections.abc import Sequence

import pytest
from PIL import Image, ImageDraw, ImageFont

from pagesight.documents.ocr import OcrResult, TesseractEngine

HAS_TESSERACT = shutil.which("tesseract") is not None
needs_tesseract = pytest.mark.skipif(
    not HAS_TESSERACT, reason="tesseract is not installed (sudo apt install tesseract-ocr)"
)


def tesseract_has(lang: str) -> bool:
    if not HAS_TESSERACT:
        return False
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, check=False).stdout
    return lang in out.split()


def text_pdf(pages: Sequence[str], *, fontname: str = "helv", fontsize: float = 13) -> bytes:
    """A PDF (A6-ish pages, 300 x 420 pt) with one paragraph of text per page."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=300, height=420)
        page.insert_textbox(pymupdf.Rect(20, 20, 280, 400), text, fontsize=fontsize, fontname=fontname)
    return bytes(doc.tobytes())


def photographed(
    image: Image.Image, *, angle: float = 3.0, noise: float = 0.02, seed: int = 7
) -> Image.Image:
    """The page as a phone would see it: turned a few degrees, grey paper, salt-and-pepper noise."""
    rng = random.Random(seed)
    turned = image.convert("L").rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=235)
    px = turned.load()
    assert px is not None
    w, h = turned.size
    for _ in range(int(noise * w * h)):
        px[rng.randrange(w), rng.randrange(h)] = rng.choice((0, 255))
    return turned.point(lambda v: min(255, int(v * 0.92) + 10))


def image_only_pdf(
    pdf: bytes, *, dpi: int = 150, transform: object = None, sizes: Sequence[float] | None = None
) -> bytes:
    """Render each page of ``pdf`` and put the picture back as the only content of a page (a "scan").

    Args:
        pdf: a PDF with a text layer.
        dpi: scan resolution.
        transform: a function applied to each page image (``photographed``).
        sizes: page widths in points (default: the originals'); heights keep the aspect ratio.
    """
    import pymupdf

    src = pymupdf.open(stream=pdf, filetype="pdf")
    out = pymupdf.open()
    for i, page in enumerate(src):
        pix = page.get_pixmap(dpi=dpi, alpha=False)
        image = Image.open(io.BytesIO(pix.tobytes("png")))
        if callable(transform):
            image = transform(image)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        width = sizes[i] if sizes else page.rect.width
        height = width * image.height / image.width
        new = out.new_page(width=width, height=height)
        new.insert_image(new.rect, stream=buf.getvalue())
    return bytes(out.tobytes())


def label_png(text: str, size: tuple[int, int] = (520, 160), fontsize: int = 44) -> bytes:
    """A raster "figure": a framed box with a big label, as in a schematic."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size[0] - 5, size[1] - 5), outline="black", width=3)
    font = ImageFont.load_default(size=fontsize)
    draw.text((30, size[1] // 2 - fontsize // 2 - 4), text, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def text_png(lines: Sequence[str], *, fontsize: int = 30, width: int = 900) -> bytes:
    """A PNG of black text lines on white (a screenshot or a scanned note)."""
    font = ImageFont.load_default(size=fontsize)
    image = Image.new("RGB", (width, 40 + int(fontsize * 1.6) * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 20 + int(fontsize * 1.6) * i), line, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class CountingEngine:
    """The real Tesseract engine, counting its calls; it can crash on images of one width."""

    name = "tesseract"

    def __init__(self, crash_on_width: int | None = None) -> None:
        self.inner = TesseractEngine()
        self.calls = 0
        self.crash_on_width = crash_on_width
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.inner.version

    @property
    def max_workers(self) -> int:
        return 2

    def languages(self) -> list[str]:
        return self.inner.languages()

    def ocr(self, image: Image.Image, lang: str) -> OcrResult:
        with self._lock:
            self.calls += 1
        if self.crash_on_width is not None and image.width == self.crash_on_width:
            raise RuntimeError("engine crashed (simulated segfault)")
        return self.inner.ocr(image, lang)

"""MaxSim heatmaps: where on a page image a late-interaction query matched.

MaxSim scores a page as ``sum over query tokens q of max over page tokens d of q·d``. Each query
token thus *picks* one page token and adds that similarity to the score; :func:`token_scores` gives
every page token the sum of what it received (0 for tokens no query token picked), so the scores of
all page tokens add up to the page's MaxSim score. :func:`page_heatmap` puts those scores where the
tokens sit on the page image:

- image-token models (NVIDIA ColEmbed through their processors, the test stand-in): each image
  token is a patch of a tile or patch grid (:meth:`ColEmbedEncoder.image_token_layout
  <pagesight.models.colembed.ColEmbedEncoder.image_token_layout>`), so its score lands on that patch;
- text-token models (``minilm-tokens``, any ``token-embeddings`` model): each token is a span of the
  page text (:meth:`ColEmbedEncoder.document_token_spans
  <pagesight.models.colembed.ColEmbedEncoder.document_token_spans>`); the words of the original PDF's
  text layer (PyMuPDF, else pypdfium2: the loaders' order) are aligned with the stored page text, and
  a token's score lands on the box of its word. Text that came from OCR (``hit.text_source`` ``"ocr"``
  or ``"both"``) uses the OCR word boxes stored beside the page image
  (:func:`~pagesight.documents.ocr.words_path`), so scanned pages and images get heatmaps too.

:func:`render_heatmap` paints the weights over the image: yellow for a weak match through orange to
red for the strongest, more opaque as the weight grows; a region of weight 0 is left untouched.

Use::

    from pagesight.retrieval.heatmap import page_heatmap

    hit = searcher.search("invoice total", k=1)[0]
    image = page_heatmap(encoder, "invoice total", hit)      # PIL image of the page, or None
    if image is not None:
        image.save("heat.png")

Only numpy and PIL are imported here; PyMuPDF / pypdfium2 when words are read from a PDF.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from pagesight.retrieval.store import Hit

__all__ = [
    "PageRegions",
    "Word",
    "align_words",
    "page_heatmap",
    "page_regions",
    "pdf_words",
    "ocr_page_words",
    "render_heatmap",
    "token_scores",
]

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

# The heat colours: yellow (weak) -> red (strong); opacity grows with the weight from a floor.
_WEAK = np.array([255.0, 225.0, 0.0])
_STRONG = np.array([230.0, 0.0, 0.0])
_MIN_OPACITY = 0.3
# How far ahead in the page text a PDF word is looked for before it is skipped as unmatched.
_LOOKAHEAD = 200


def token_scores(
    query_tokens: np.ndarray, doc_tokens: np.ndarray, *, reduce: Literal["sum", "max"] = "sum"
) -> np.ndarray:
    """Each document token's share of the MaxSim score (``"sum"``), or its best similarity (``"max"``).

    ``"sum"`` (the default): for each query token, its most similar document token receives that
    similarity; a document token's score is the sum of what it received, 0 when no query token
    picked it. The scores add up to the MaxSim score ``(Q @ D.T).max(axis=1).sum()`` (ties go to the
    first document token). A score is negative only when a query token's best similarity is.

    ``"max"``: each document token's highest similarity to any query token, picked or not (a
    dense map: every token gets a value, also where it lost to a better token).

    Example:
        >>> q = np.eye(3, dtype=np.float32)[:2]          # two query tokens
        >>> d = np.eye(3, dtype=np.float32)              # three document tokens
        >>> token_scores(q, d).tolist()
        [1.0, 1.0, 0.0]

    Args:
        query_tokens: ``(n_query, dim)`` query token vectors (unit rows for cosine similarities).
        doc_tokens: ``(n_doc, dim)`` document token vectors.
        reduce: ``"sum"`` or ``"max"`` as above.

    Returns:
        float64 ``(n_doc,)``.
    """
    q = np.asarray(query_tokens, dtype=np.float64)
    d = np.asarray(doc_tokens, dtype=np.float64)
    if q.ndim != 2 or d.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"expected (n, dim) matrices of one dim, got {q.shape} and {d.shape}")
    if reduce not in ("sum", "max"):
        raise ValueError(f"`reduce` must be 'sum' or 'max', got {reduce!r}")
    out = np.zeros(d.shape[0], dtype=np.float64)
    if q.shape[0] == 0 or d.shape[0] == 0:
        return out
    sim = q @ d.T
    if reduce == "max":
        result: np.ndarray = sim.max(axis=0)
        return result
    best = sim.argmax(axis=1)
    np.add.at(out, best, sim[np.arange(q.shape[0]), best])
    return out


def render_heatmap(
    image: Image.Image, boxes: Sequence[Box], weights: Sequence[float] | np.ndarray, alpha: float = 0.45
) -> Image.Image:
    """``image`` with each box tinted by its weight: yellow (weak) to red (strongest), blocky.

    Weights are divided by the largest; a pixel covered by several boxes takes the largest weight.
    The tint's colour runs from yellow to red and its opacity from ``0.3 * alpha`` to ``alpha`` as
    the weight goes from just above 0 to the maximum, so on any background a pixel moves steadily
    further toward red as the weight grows. Pixels in no box of positive weight are copied
    unchanged.

    Example:
        >>> page = Image.new("RGB", (100, 50), "white")
        >>> out = render_heatmap(page, [(0, 0, 50, 50), (50, 0, 100, 50)], [1.0, 0.0])
        >>> out.getpixel((75, 25))          # weight 0: untouched
        (255, 255, 255)

    Args:
        image: the page image (any mode; the result is RGB of the same size).
        boxes: ``(x0, y0, x1, y1)`` pixel boxes of the image (clipped to it).
        weights: one weight >= 0 per box.
        alpha: opacity of the strongest tint, in ``(0, 1]``.

    Raises:
        ValueError: lengths differ, a weight is negative or not finite, or ``alpha`` is out of range.
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(boxes) != w.shape[0]:
        raise ValueError(f"{len(boxes)} boxes but {w.shape[0]} weights")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    if not 0 < alpha <= 1:
        raise ValueError(f"`alpha` must be in (0, 1], got {alpha}")
    base = image.convert("RGB")
    peak = float(w.max()) if w.size else 0.0
    if peak <= 0:
        return base.copy()
    width, height = base.size
    heat = np.zeros((height, width), dtype=np.float64)
    for (x0, y0, x1, y1), weight in zip(boxes, w / peak, strict=True):
        if weight <= 0:
            continue
        left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
        if right > left and bottom > top:
            region = heat[top:bottom, left:right]
            np.maximum(region, weight, out=region)
    hot = heat > 0
    if not hot.any():
        return base.copy()
    pixels = np.asarray(base, dtype=np.float64)
    h = heat[hot][:, None]
    colour = _WEAK + (_STRONG - _WEAK) * h
    opacity = alpha * (_MIN_OPACITY + (1 - _MIN_OPACITY) * h)
    out = pixels.copy()
    out[hot] = pixels[hot] * (1 - opacity) + colour * opacity
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


# --------------------------------------------------------------------------- words of a PDF page


@dataclass(frozen=True, slots=True)
class Word:
    """A word of a PDF page's text layer and its box in pixels of the page image."""

    text: str
    box: Box


def ocr_page_words(hit: Hit) -> list[Word]:
    """The OCR words stored beside ``hit``'s page image (boxes in its pixels), or ``[]``."""
    if hit.image is None:
        return []
    from pagesight.documents.ocr import read_words

    return [Word(w.text, w.box) for w in read_words(hit.image) or []]


def pdf_words(path: str | os.PathLike[str], page: int, image_size: tuple[int, int]) -> list[Word] | None:
    """The words of page ``page`` (1-based) of a PDF, boxes scaled to an image of ``image_size``.

    Read with PyMuPDF when installed (with the loader's text flags: ligatures expanded, line-end
    hyphens joined), else with pypdfium2 (characters grouped at white space), as
    :func:`pagesight.documents.pdf.load_pdf` picks its renderer. Page rotation and crop box are
    applied as the renderers apply them. ``None`` (reason logged) when no reader is installed or
    the file cannot be read; a page without text gives ``[]``.
    """
    try:
        import pymupdf  # noqa: F401
    except ImportError:
        pass
    else:
        return _mupdf_words(path, page, image_size)
    try:
        import pypdfium2  # noqa: F401
    except ImportError:
        logger.info("neither PyMuPDF nor pypdfium2 is installed: no word boxes for %s", path)
        return None
    return _pdfium_words(path, page, image_size)


def _mupdf_words(path: str | os.PathLike[str], page: int, image_size: tuple[int, int]) -> list[Word] | None:
    import pymupdf

    flags = (pymupdf.TEXTFLAGS_WORDS & ~pymupdf.TEXT_PRESERVE_LIGATURES) | pymupdf.TEXT_DEHYPHENATE
    try:
        with pymupdf.open(os.fspath(path)) as doc:
            if not 1 <= page <= doc.page_count:
                logger.info("%s has no page %d", path, page)
                return None
            pdf_page = doc.load_page(page - 1)
            rect = pdf_page.rect
            sx, sy = image_size[0] / rect.width, image_size[1] / rect.height
            matrix = pdf_page.rotation_matrix
            words = []
            for x0, y0, x1, y1, text, *_ in pdf_page.get_text("words", flags=flags):
                r = pymupdf.Rect(x0, y0, x1, y1) * matrix
                words.append(Word(text, (r.x0 * sx, r.y0 * sy, r.x1 * sx, r.y1 * sy)))
            return words
    except Exception as e:  # a damaged or vanished file: no heatmap, not a failed request
        logger.info("cannot read the words of %s page %d: %s", path, page, e)
        return None


def _pdfium_words(path: str | os.PathLike[str], page: int, image_size: tuple[int, int]) -> list[Word] | None:
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    scale = 4  # PDFium maps to integer device pixels: map to a 4x larger device, then divide
    try:
        doc = pdfium.PdfDocument(os.fspath(path))
    except Exception as e:
        logger.info("cannot open %s: %s", path, e)
        return None
    try:
        if not 1 <= page <= len(doc):
            logger.info("%s has no page %d", path, page)
            return None
        pdf_page = doc[page - 1]
        textpage = pdf_page.get_textpage()
        width, height = image_size[0] * scale, image_size[1] * scale

        def device(x: float, y: float) -> tuple[float, float]:
            dx, dy = ctypes.c_int(), ctypes.c_int()
            raw.FPDF_PageToDevice(
                pdf_page.raw, 0, 0, width, height, 0, x, y, ctypes.byref(dx), ctypes.byref(dy)
            )
            return dx.value / scale, dy.value / scale

        words: list[Word] = []
        chars: list[str] = []
        box: list[float] = []
        for i in range(textpage.count_chars()):
            char = chr(raw.FPDFText_GetUnicode(textpage.raw, i))
            if char.isspace() or char == "\x00":
                if chars:
                    words.append(Word("".join(chars), (box[0], box[1], box[2], box[3])))
                    chars, box = [], []
                continue
            left, bottom, right, top = textpage.get_charbox(i)
            (ax, ay), (bx, by) = device(left, bottom), device(right, top)
            cbox = [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]
            box = (
                cbox
                if not chars
                else [min(box[0], cbox[0]), min(box[1], cbox[1]), max(box[2], cbox[2]), max(box[3], cbox[3])]
            )
            chars.append(char)
        if chars:
            words.append(Word("".join(chars), (box[0], box[1], box[2], box[3])))
        textpage.close()
        pdf_page.close()
        return words
    except Exception as e:
        logger.info("cannot read the words of %s page %d: %s", path, page, e)
        return None
    finally:
        doc.close()


_FOLD = str.maketrans({"\u00ad": None, "\x00": None})


def _fold(text: str) -> str:
    """What word matching compares: NFKC (ligatures, full-width forms) without soft hyphens."""
    return unicodedata.normalize("NFKC", text.translate(_FOLD))


def align_words(text: str, words: Sequence[Word]) -> list[tuple[int, int, Word]]:
    """Find the PDF words in the page text, in order: ``(start, end, word)`` per word found.

    Each word is looked for from where the previous one ended, at most ~200 characters ahead
    (NFKC-folded, so ligatures and full-width forms match the loader's expanded text); a word not
    found there is skipped, so one mismatch does not derail the rest.
    """
    folded = _fold(text)
    fold = len(folded) == len(text)  # else positions would shift: compare the raw text
    if not fold:
        folded = text
    out: list[tuple[int, int, Word]] = []
    cursor = 0
    for word in words:
        needle = (_fold(word.text) if fold else word.text).strip()
        if not needle:
            continue
        at = folded.find(needle, cursor, cursor + _LOOKAHEAD + len(needle))
        if at < 0:
            continue
        out.append((at, at + len(needle), word))
        cursor = at + len(needle)
    return out


# --------------------------------------------------------------------------- heatmaps of hits


@dataclass(frozen=True, slots=True)
class PageRegions:
    """Where on a page image a query matched: boxes and their (summed MaxSim) weights.

    Attributes:
        kind: ``"image"`` (boxes are image patches) or ``"text"`` (boxes are words).
        boxes: ``(x0, y0, x1, y1)`` pixel boxes of the page image.
        weights: one weight >= 0 per box (the tokens' MaxSim shares; negative shares clipped to 0).
        size: ``(width, height)`` of the page image.
    """

    kind: Literal["image", "text"]
    boxes: list[Box]
    weights: np.ndarray
    size: tuple[int, int]

    def hottest(self) -> Box | None:
        """The box of largest weight (``None`` when nothing matched)."""
        if self.weights.size == 0 or float(self.weights.max()) <= 0:
            return None
        return self.boxes[int(self.weights.argmax())]


def page_regions(
    encoder: Any, question: str, hit: Hit, *, source_path: str | Path | None = None
) -> PageRegions | None:
    """The boxes of ``hit``'s page image and how much each contributed to the MaxSim score.

    The page is encoded again (its image for image-token models, its stored text for text-token
    models) and scored against ``question`` with :func:`token_scores`. Returns ``None``, with the
    reason logged at INFO, when the page has no image or the tokens cannot be placed on it (see
    :func:`page_heatmap`).

    Args:
        encoder: a late-interaction encoder (:class:`~pagesight.models.colembed.ColEmbedEncoder`).
        question: the query text.
        hit: the retrieved page.
        source_path: the original PDF, for text-token models; default ``hit.source`` when that is
            a readable local file.
    """
    if hit.image is None or not Path(hit.image).is_file():
        logger.info("%s p.%d has no page image to draw a heatmap on", hit.source, hit.page)
        return None
    with Image.open(hit.image) as img:
        image = img.convert("RGB")
    if _image_tokens(encoder, hit):
        return _image_regions(encoder, question, hit, image)
    return _text_regions(encoder, question, hit, image, source_path)


def page_heatmap(
    encoder: Any,
    question: str,
    hit: Hit,
    *,
    source_path: str | Path | None = None,
    alpha: float = 0.45,
) -> Image.Image | None:
    """``hit``'s page image with the regions that matched ``question`` tinted (yellow weak, red strong).

    Image-token models: each image token's share of the MaxSim score is drawn on its patch.
    Text-token models: each text token's share is drawn on its word's box in the original PDF
    (``source_path``, default ``hit.source`` when it is a readable local PDF). Regions no query token
    picked are left untouched. Same size as the page image file.

    Returns ``None``, saying why with ``logger.info``, when the page has no image; when the
    encoder cannot say where its tokens are (a model without a known image-token layout, a
    ``MultiVectorEncoder`` text model); or, for text-token models, when there is no readable
    local PDF or none of its words are found in the stored text.

    Example::

        image = page_heatmap(encoder, "where is the invoice total?", hits[0])
        image.save("heat.png") if image is not None else None

    Args:
        encoder: the store's late-interaction encoder.
        question: the query text.
        hit: a page returned by a search of the store.
        source_path: the original PDF, when ``hit.source`` is not a local file (a URL, say).
        alpha: the strongest tint's opacity.
    """
    regions = page_regions(encoder, question, hit, source_path=source_path)
    if regions is None:
        return None
    assert hit.image is not None  # page_regions returns None without one
    with Image.open(hit.image) as img:
        image = img.convert("RGB")
    return render_heatmap(image, regions.boxes, regions.weights, alpha)


def _image_tokens(encoder: Any, hit: Hit) -> bool:
    """Whether the encoder embeds this page as an image (else as text)."""
    if getattr(encoder, "backend_name", None) == "token-embeddings":
        return False
    if getattr(encoder, "page_input", "auto") == "text":
        return False
    try:
        return bool(getattr(encoder, "supports_images", False))
    except Exception as e:  # the model could not be loaded to find out
        logger.info("cannot tell whether %r embeds images: %s", encoder, e)
        return False


def _image_regions(encoder: Any, question: str, hit: Hit, image: Image.Image) -> PageRegions | None:
    layout_of = getattr(encoder, "image_token_layout", None)
    layout = layout_of(image) if callable(layout_of) else None
    if layout is None:
        logger.info("%r does not say where its image tokens lie; no heatmap", encoder)
        return None
    doc = encoder.encode_images([image])[0]
    if doc.shape[0] != layout.tokens:
        logger.info(
            "%r returned %d image tokens but its layout expects %d; no heatmap",
            encoder,
            doc.shape[0],
            layout.tokens,
        )
        return None
    from pagesight.models._colembed_layout import token_boxes

    rows, boxes = token_boxes(layout.grids)
    scores = token_scores(encoder.encode_queries([question])[0], doc)
    return PageRegions("image", boxes, np.clip(scores[rows], 0, None), image.size)


def _text_regions(
    encoder: Any, question: str, hit: Hit, image: Image.Image, source_path: str | Path | None
) -> PageRegions | None:
    if not hit.text.strip():
        logger.info(
            "%s p.%d has no text layer; a text model's tokens have no place on it", hit.source, hit.page
        )
        return None
    spans_of = getattr(encoder, "document_token_spans", None)
    spans = spans_of([hit.text]) if callable(spans_of) else None
    if spans is None:
        logger.info("%r does not map its tokens to characters; no heatmap", encoder)
        return None
    # OCR'd text has its word boxes beside the page image; text-layer words come from the PDF.
    ocr_words = ocr_page_words(hit) if hit.text_source in ("ocr", "both") else []
    pdf = _local_pdf(source_path, hit) if hit.text_source != "ocr" else None
    if pdf is None and not ocr_words:
        return None
    words = ((pdf_words(pdf, hit.page, image.size) or []) if pdf is not None else []) + ocr_words
    where = pdf or hit.image
    if not words:
        logger.info("no words with boxes on %s page %d; no heatmap", where, hit.page)
        return None
    placed = align_words(hit.text, words)
    if not placed:
        logger.info("none of the %d words of %s page %d match the stored text", len(words), where, hit.page)
        return None
    doc = encoder.encode_documents([hit.text])[0]
    if doc.shape[0] != spans[0].shape[0]:
        logger.info(
            "%r: %d token rows but %d token spans; no heatmap", encoder, doc.shape[0], spans[0].shape[0]
        )
        return None
    scores = token_scores(encoder.encode_queries([question])[0], doc)
    owner = np.full(len(hit.text) + 1, -1, dtype=np.int64)  # character -> index into placed
    for i, (start, end, _) in enumerate(placed):
        owner[start:end] = i
    weights = np.zeros(len(placed), dtype=np.float64)
    located = 0
    for (start, end), score in zip(spans[0], scores, strict=True):
        if start < 0 or end <= start:
            continue
        hits = np.unique(owner[start:end])
        hits = hits[hits >= 0]
        if hits.size:
            located += 1
            weights[hits] += score
    logger.debug("%d of %d tokens placed on %d words", located, len(scores), len(placed))
    return PageRegions("text", [w.box for _, _, w in placed], np.clip(weights, 0, None), image.size)


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _local_pdf(source_path: str | Path | None, hit: Hit) -> Path | None:
    """The readable local PDF the page came from, or ``None`` (reason logged)."""
    candidate = Path(source_path) if source_path is not None else None
    if candidate is None:
        if _URL.match(hit.source):
            logger.info("%s is not a local file; pass source_path= to draw a text heatmap", hit.source)
            return None
        candidate = Path(hit.source)
    try:
        with open(candidate, "rb") as f:
            head = f.read(1024)
    except OSError as e:
        logger.info("cannot read %s for word boxes: %s", candidate, e)
        return None
    if b"%PDF-" not in head:
        logger.info("%s is not a PDF; a text heatmap needs the PDF's word boxes", candidate)
        return None
    return candidate

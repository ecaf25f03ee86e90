"""OCR for pages without a text layer: scanned PDFs, photographed pages and raster figures.

Two engines, picked by what is installed (:func:`pick_engine`):

- ``"tesseract"``: the Tesseract 4/5 command-line program (``apt install tesseract-ocr``,
  ``brew install tesseract``; language packs ``tesseract-ocr-deu``, ``-jpn``, ...). pagesight runs
  the binary itself with ``tsv`` output (words, boxes, confidences), one process per page with
  ``OMP_THREAD_LIMIT=1``, so no Python binding is needed and several pages run at once. About 1 s a
  page on one core.
- ``"rapidocr"``: RapidOCR (``pip install "pagesight[ocr]"``, PP-OCRv4 ONNX models shipped in the
  wheel; no system packages). Slower (about 10 s a page on 2 cores) and English-only in practice
  (its models are Chinese+English); it drops spaces between English words, which this module puts
  back from the gaps between the character boxes.

The loaders (:func:`~pagesight.documents.load_pdf`, :func:`~pagesight.documents.load_image`,
:func:`~pagesight.documents.load_source`, folders) take ``ocr="auto" | "always" | "never"``; ``"auto"``
OCRs a page whose text layer is missing or too thin (:func:`needs_ocr`) and raster figures on pages
that have text (their labels are appended). Results are cached by the image's bytes
(:class:`OcrCache`), so indexing the same page again costs nothing.

Example:
    >>> from pagesight.documents.ocr import ocr_image, pick_engine
    >>> engine = pick_engine("auto")  # doctest: +SKIP
    >>> result = ocr_image("scan.png", engine=engine, lang="eng")  # doctest: +SKIP
    >>> result.text, result.words[0]  # doctest: +SKIP
    ('Invoice 2024-117 ...', OcrWord(text='Invoice', box=(102.0, 88.0, 231.0, 121.0), conf=96.1))
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import threading
import unicodedata
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, cast, runtime_checkable

from PIL import Image

from pagesight.documents._common import DEFAULT_MAX_CHARS_PER_PAGE, atomic_write
from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, ImageTooLargeError, MissingDependencyError, OcrError

__all__ = [
    "OCR_INSTALL_HINT",
    "OcrMode",
    "OcrWord",
    "OcrResult",
    "OcrEngine",
    "OcrOptions",
    "OcrCache",
    "TesseractEngine",
    "RapidOcrEngine",
    "available_engines",
    "pick_engine",
    "describe_engine",
    "needs_ocr",
    "ocr_image",
    "words_path",
    "read_words",
    "OcrJob",
    "OcrStage",
    "Region",
    "ocr_options",
    "ocr_stage",
    "run_ocr",
    "page_list",
    "blank_pages_note",
    "OCR_MIN_CHARS",
    "OCR_THIN_CHARS_PER_SQIN",
    "OCR_IMAGE_COVERAGE",
    "OCR_FIGURE_MIN_FRACTION",
    "DEFAULT_OCR_DPI",
]

logger = logging.getLogger(__name__)

OcrMode = Literal["auto", "always", "never"]
TextSource = Literal["layer", "ocr", "both"]

OCR_INSTALL_HINT = (
    "install an OCR engine: `sudo apt install tesseract-ocr` (Debian/Ubuntu; language packs "
    "tesseract-ocr-deu, tesseract-ocr-jpn, ...), `brew install tesseract` (macOS; `brew install "
    'tesseract-lang` for more languages), or `pip install "pagesight[ocr]"` (RapidOCR, no system packages)'
)
"""What to run when no OCR engine is installed (used in warnings and errors)."""

OCR_MIN_CHARS = 1
"""A page whose text layer has fewer non-space characters than this (none) is OCR'd (``ocr="auto"``).

Measured on the 314 pages of ``eval/corpus`` and ``examples/``: every page with a real text layer has
at least 31 characters (title pages), blank pages have 0 (and are skipped before OCR as blank
images). A short layer on a page without images (a one-word slide) is real text and is kept; a
short layer over a page-sized image (a scan with a stamp) is caught by :data:`OCR_THIN_CHARS_PER_SQIN`."""

OCR_THIN_CHARS_PER_SQIN = 2.0
"""With raster images covering :data:`OCR_IMAGE_COVERAGE` of the page, a text layer below this many
non-space characters per square inch (187 on a US Letter page) is "too thin" and the page is OCR'd:
a scan with a stamp or a one-line caption. Real text pages in ``eval/`` have 15-21 (median 21);
a scan with a proper OCR layer has 20 or more, so its layer is kept."""

OCR_IMAGE_COVERAGE = 0.5
"""Share of the page area raster images must cover for :data:`OCR_THIN_CHARS_PER_SQIN` to apply."""

OCR_FIGURE_MIN_FRACTION = 0.04
"""A raster image on a page with text is OCR'd as a figure when it covers at least this share of
the page (4 %: about 2 × 2 inches on Letter) and is at least 64 × 24 pixels at ``ocr_dpi``."""

DEFAULT_OCR_DPI = 150
"""Resolution PDF pages are rendered at for OCR (Tesseract reads 150 dpi body text well)."""

_MAX_OCR_SIDE = 4000  # larger images (phone photos) are scaled down before OCR
_MIN_OCR_SIDE = 16  # smaller images hold no readable text
_BLANK_RANGE = 24  # grey-level range under which an image is blank paper
_TIMEOUT_S = 180.0


# --------------------------------------------------------------------------- results


class OcrWord(NamedTuple):
    """One recognized word: its text, box ``(x0, y0, x1, y1)`` in page image pixels, confidence 0-100."""

    text: str
    box: tuple[float, float, float, float]
    conf: float


@dataclass(frozen=True, slots=True)
class OcrResult:
    """What an engine read from one image.

    Attributes:
        text: the text, lines joined by ``\\n`` and paragraphs by a blank line.
        words: every word with its box in the image's pixel coordinates (page pixels once placed).
        engine: the engine's name and version, e.g. ``"tesseract 5.3.0"``.
    """

    text: str
    words: tuple[OcrWord, ...] = ()
    engine: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "engine": self.engine,
            "words": [[w.text, *[round(v, 1) for v in w.box], round(w.conf, 1)] for w in self.words],
        }

    @classmethod
    def from_json(cls, data: object) -> OcrResult:
        """Read :meth:`to_json`'s output back, checking it (it comes from a file anyone may have edited).

        Raises:
            ValueError: ``data`` is not an object with a string ``text``/``engine`` and ``words``
                a list of ``[text, x0, y0, x1, y1, conf]`` with finite numbers.
        """
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object but {type(data).__name__}")
        text, engine, raw_words = data.get("text", ""), data.get("engine", ""), data.get("words", [])
        if not isinstance(text, str) or not isinstance(engine, str):
            raise ValueError("`text` and `engine` must be strings")
        if not isinstance(raw_words, list):
            raise ValueError(f"`words` is not a list but {type(raw_words).__name__}")
        words = []
        for i, w in enumerate(raw_words):
            if not (
                isinstance(w, list)
                and len(w) == 6
                and isinstance(w[0], str)
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in w[1:])
                and all(math.isfinite(v) for v in w[1:])
            ):
                raise ValueError(
                    f"word {i} is not [text, x0, y0, x1, y1, conf] with finite numbers: {w!r:.80}"
                )
            words.append(OcrWord(w[0], (float(w[1]), float(w[2]), float(w[3]), float(w[4])), float(w[5])))
        return cls(text, tuple(words), engine)


# --------------------------------------------------------------------------- engines


@runtime_checkable
class OcrEngine(Protocol):
    """What pagesight needs of an OCR engine.

    ``ocr`` must be safe to call from several threads at once; ``max_workers`` says how many calls
    are worth running at once (``1`` for an engine that parallelizes inside itself).
    """

    name: str

    @property
    def version(self) -> str: ...

    @property
    def max_workers(self) -> int: ...

    def languages(self) -> list[str]: ...

    def ocr(self, image: Image.Image, lang: str) -> OcrResult: ...


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\uac00-\ud7af]")


def _join_words(words: Sequence[str]) -> str:
    """Join a line's words with spaces, except between two CJK characters (Tesseract splits those)."""
    out = ""
    for w in words:
        if out and not (_CJK.match(out[-1]) and _CJK.match(w[0])):
            out += " "
        out += w
    return out


class TesseractEngine:
    """The ``tesseract`` program (4.x or 5.x), run once per image with ``tsv`` output.

    Install: ``sudo apt install tesseract-ocr`` (plus ``tesseract-ocr-deu`` ... for other languages),
    ``brew install tesseract``, or the UB Mannheim installer on Windows.

    Args:
        binary: the program; default ``tesseract`` on ``PATH`` (or ``$PAGESIGHT_TESSERACT``).
        psm: Tesseract page segmentation mode (3: automatic, the default).
        timeout: seconds one image may take.
    """

    name = "tesseract"

    def __init__(self, binary: str | None = None, *, psm: int = 3, timeout: float = _TIMEOUT_S) -> None:
        self.binary = binary or os.environ.get("PAGESIGHT_TESSERACT") or "tesseract"
        self.psm = psm
        self.timeout = timeout
        self._lock = threading.Lock()
        self._version: str | None = None
        self._langs: list[str] | None = None

    @staticmethod
    def installed(binary: str | None = None) -> bool:
        """Whether the program is on ``PATH``."""
        return shutil.which(binary or os.environ.get("PAGESIGHT_TESSERACT") or "tesseract") is not None

    @property
    def version(self) -> str:
        with self._lock:
            if self._version is None:
                out = self._run([self.binary, "--version"], None).decode("utf-8", "replace")
                found = re.search(r"tesseract\s+v?([\d.]+\S*)", out)
                self._version = found.group(1) if found else "unknown"
            return self._version

    @property
    def max_workers(self) -> int:
        return _cores()

    def languages(self) -> list[str]:
        with self._lock:
            if self._langs is None:
                out = self._run([self.binary, "--list-langs"], None).decode("utf-8", "replace")
                self._langs = sorted(
                    line.strip() for line in out.splitlines()[1:] if line.strip() and line.strip() != "osd"
                )
            return list(self._langs)

    def check_lang(self, lang: str) -> None:
        """Raise :class:`ConfigurationError` when a language of ``lang`` (``"deu+eng"``) is not installed."""
        have = self.languages()
        missing = [part for part in lang.split("+") if part not in have]
        if missing:
            pkgs = " ".join(f"tesseract-ocr-{m.lower().replace('_', '-')}" for m in missing)
            raise ConfigurationError(
                f"`ocr_lang` {lang!r}: Tesseract has no language pack for {', '.join(missing)} "
                f"(installed: {', '.join(have) or 'none'}); install it: sudo apt install {pkgs} "
                "(Debian/Ubuntu) or brew install tesseract-lang (macOS)"
            )

    def _run(self, cmd: list[str], data: bytes | None) -> bytes:
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            done = subprocess.run(
                cmd, input=data, capture_output=True, timeout=self.timeout, env=env, check=False
            )
        except FileNotFoundError as e:
            raise MissingDependencyError(
                f"the Tesseract program {self.binary!r} is not found; {OCR_INSTALL_HINT}"
            ) from e
        except OSError as e:  # not executable, built for another machine (exec format error), ...
            raise MissingDependencyError(
                f"the Tesseract program {self.binary!r} cannot be run ({e.strerror or e}); reinstall it, "
                f"or point $PAGESIGHT_TESSERACT at a working tesseract; {OCR_INSTALL_HINT}"
            ) from e
        except subprocess.TimeoutExpired as e:
            raise OcrError(f"tesseract took more than {self.timeout:g} s on one image") from e
        if done.returncode != 0:
            msg = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise OcrError(f"tesseract failed (exit {done.returncode}): {' '.join(msg[-3:])}")
        return done.stdout

    def ocr(self, image: Image.Image, lang: str) -> OcrResult:
        """Read ``image`` (any PIL mode) with Tesseract languages ``lang`` (``"eng"``, ``"deu+eng"``)."""
        buf = io.BytesIO()
        image.convert("L").save(buf, format="PNG", compress_level=1)
        # always said: the PNG saved here carries no resolution, and without one Tesseract guesses
        cmd = [
            self.binary,
            "stdin",
            "stdout",
            "-l",
            lang,
            "--psm",
            str(self.psm),
            "--dpi",
            str(_dpi_of(image)),
        ]
        raw = self._run([*cmd, "tsv"], buf.getvalue())
        return _parse_tsv(raw.decode("utf-8", "replace"), f"tesseract {self.version}")


def _dpi_of(image: Image.Image) -> int:
    """The image's resolution (``info["dpi"]``, as Pillow reads it from the file), else the default."""
    dpi: Any = image.info.get("dpi")
    try:
        value = float(dpi[0] if isinstance(dpi, tuple | list) else dpi)
    except (TypeError, ValueError, IndexError):
        return DEFAULT_OCR_DPI
    return round(value) if math.isfinite(value) and 30 <= value <= 2400 else DEFAULT_OCR_DPI


def _parse_tsv(tsv: str, engine: str) -> OcrResult:
    """Tesseract's TSV (level, page, block, par, line, word, left, top, width, height, conf, text)."""
    words: list[OcrWord] = []
    lines: dict[tuple[int, int, int], list[str]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = cols[11].strip()
        try:
            conf = float(cols[10])
            left, top, width, height = (float(c) for c in cols[6:10])
        except ValueError:
            continue
        if not text or conf < 0:
            continue
        words.append(OcrWord(text, (left, top, left + width, top + height), conf))
        lines.setdefault((int(cols[2]), int(cols[3]), int(cols[4])), []).append(text)
    paragraphs: list[list[str]] = []
    last: tuple[int, int] | None = None
    for (block, par, _), line_words in lines.items():
        if (block, par) != last:
            paragraphs.append([])
            last = (block, par)
        paragraphs[-1].append(_join_words(line_words))
    text = "\n\n".join("\n".join(p) for p in paragraphs)
    return OcrResult(unicodedata.normalize("NFC", text), tuple(words), engine)


class RapidOcrEngine:
    """RapidOCR (``pip install "pagesight[ocr]"``): PP-OCRv4 models on ONNX Runtime, shipped in the wheel.

    It reads Chinese and English (``lang`` is ignored). Its recognizer often returns English lines
    without the spaces between words; this engine asks for character boxes and puts a space back
    between two characters wherever a run of ink-free columns in the line's image is wider than
    :attr:`space_gap` times the line's height.

    Args:
        space_gap: gap (in line heights) that makes a space.
        threads: ONNX Runtime threads (default: the cores).
    """

    name = "rapidocr"

    def __init__(self, *, space_gap: float = 0.2, threads: int | None = None) -> None:
        self.space_gap = space_gap
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    @staticmethod
    def installed() -> bool:
        """Whether RapidOCR imports (OpenCV, which it pulls in, needs libGL on Linux)."""
        return _rapidocr_imports()

    @property
    def version(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rapidocr-onnxruntime")
        except PackageNotFoundError:
            return "unknown"

    @property
    def max_workers(self) -> int:
        return 1  # ONNX Runtime already uses every core

    def languages(self) -> list[str]:
        return ["eng", "chi_sim"]

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as e:
                    raise MissingDependencyError(
                        'RapidOCR is not installed: pip install "pagesight[ocr]"'
                    ) from e
                n = self.threads or _cores()
                self._engine = RapidOCR(intra_op_num_threads=n, inter_op_num_threads=1)
            return self._engine

    def ocr(self, image: Image.Image, lang: str) -> OcrResult:
        import numpy as np

        engine = self._load()
        arr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()  # BGR, as OpenCV reads
        gray = np.asarray(image.convert("L"))
        with self._lock:  # one image at a time: ONNX Runtime parallelizes inside
            res, _ = engine(arr, return_word_box=True)
        words: list[OcrWord] = []
        lines: list[tuple[float, float, str]] = []
        for item in res or []:
            box, text, score = item[0], str(item[1]), float(item[2])
            char_boxes = item[3] if len(item) > 3 else None
            char_texts = item[4] if len(item) > 4 else None
            pieces = self._respace(gray, text, box, char_boxes, char_texts, score)
            words.extend(pieces)
            ys = [p[1] for p in box]
            xs = [p[0] for p in box]
            lines.append((float(min(ys)), float(min(xs)), " ".join(w.text for w in pieces) or text))
        lines.sort()
        return OcrResult("\n".join(t for _, _, t in lines), tuple(words), f"rapidocr {self.version}")

    def _respace(
        self, gray: Any, text: str, box: Any, char_boxes: Any, char_texts: Any, score: float
    ) -> list[OcrWord]:
        """Split a recognized line into words, putting back the spaces RapidOCR dropped.

        The character boxes RapidOCR returns come from its recognizer's time steps and do not show
        the gaps between words, so the gaps are read from the image instead: columns of the line
        without ink, in runs wider than :attr:`space_gap` times the line's height, are spaces.
        """
        import numpy as np

        xs = [float(p[0]) for p in box]
        ys = [float(p[1]) for p in box]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        line_box = (x0, y0, x1, y1)
        if not char_boxes or not char_texts or len(char_boxes) != len(char_texts):
            return [OcrWord(t, line_box, score * 100) for t in text.split()]
        crop = gray[max(0, int(y0)) : int(y1) + 1, max(0, int(x0)) : int(x1) + 1]
        gaps: list[float] = []
        if crop.size:
            lo, hi = float(crop.min()), float(crop.max())
            ink = (crop < (lo + hi) / 2).any(axis=0) if hi - lo > 20 else np.ones(crop.shape[1], bool)
            min_run = max(3.0, self.space_gap * (y1 - y0))
            run_start = None
            for i, has_ink in enumerate([*ink.tolist(), True]):
                if not has_ink and run_start is None:
                    run_start = i
                elif has_ink and run_start is not None:
                    if i - run_start >= min_run and run_start > 0 and i < len(ink):
                        gaps.append(x0 + (run_start + i) / 2)
                    run_start = None
        cells = []
        for t, b in zip(char_texts, char_boxes, strict=True):
            bx = [float(p[0]) for p in b]
            by = [float(p[1]) for p in b]
            cells.append((str(t), min(bx), min(by), max(bx), max(by)))
        groups: list[list[tuple[str, float, float, float, float]]] = [[]]
        for i, c in enumerate(cells):
            if not c[0].strip():
                if groups[-1]:
                    groups.append([])
                continue
            if groups[-1] and i > 0:
                prev = groups[-1][-1]
                left, right = (prev[1] + prev[3]) / 2, (c[1] + c[3]) / 2
                cjk = _CJK.match(prev[0][-1]) and _CJK.match(c[0][0])
                if not cjk and any(left < g < right for g in gaps):
                    groups.append([])
            groups[-1].append(c)
        return [
            OcrWord(
                "".join(c[0] for c in g),
                (min(c[1] for c in g), min(c[2] for c in g), max(c[3] for c in g), max(c[4] for c in g)),
                score * 100,
            )
            for g in groups
            if g
        ]


EngineName = Literal["auto", "tesseract", "rapidocr"]

_ENGINE_CACHE: dict[str, OcrEngine] = {}
_ENGINE_LOCK = threading.Lock()


def available_engines() -> list[str]:
    """Names of the OCR engines installed here, best first (``["tesseract", "rapidocr"]``, ...)."""
    found = []
    if TesseractEngine.installed():
        found.append("tesseract")
    if RapidOcrEngine.installed():
        found.append("rapidocr")
    return found


def pick_engine(engine: str | OcrEngine | None = "auto") -> OcrEngine | None:
    """The OCR engine to use, or ``None`` when none is installed.

    Args:
        engine: ``"auto"`` or ``None`` (Tesseract when installed, else RapidOCR, else ``None``),
            ``"tesseract"``, ``"rapidocr"``, or an engine object (returned as is).

    Raises:
        ConfigurationError: an unknown name.
        MissingDependencyError: the named engine is not installed (the message says how to install it).
    """
    if engine is not None and not isinstance(engine, str):
        return engine
    name = engine or "auto"
    if name not in ("auto", "tesseract", "rapidocr"):
        raise ConfigurationError(f"`ocr_engine` must be 'auto', 'tesseract' or 'rapidocr', got {engine!r}")
    if name == "auto":
        found = available_engines()
        if not found:
            return None
        name = found[0]
    with _ENGINE_LOCK:
        if name not in _ENGINE_CACHE:
            if name == "tesseract":
                if not TesseractEngine.installed():
                    raise MissingDependencyError(
                        "Tesseract is not installed: sudo apt install tesseract-ocr (Debian/Ubuntu) "
                        "or brew install tesseract (macOS)"
                    )
                _ENGINE_CACHE[name] = TesseractEngine()
            else:
                if not RapidOcrEngine.installed():
                    raise MissingDependencyError('RapidOCR is not installed: pip install "pagesight[ocr]"')
                _ENGINE_CACHE[name] = RapidOcrEngine()
        return _ENGINE_CACHE[name]


def describe_engine(engine: OcrEngine | None, lang: str = "eng") -> str:
    """One line for the CLI: ``"tesseract 5.3.0 (eng)"`` or the install hint when ``None``."""
    if engine is None:
        return (
            "none installed (pages without a text layer are indexed as images only; " + OCR_INSTALL_HINT + ")"
        )
    try:
        version = engine.version
    except Exception:  # a broken install: say so, the pages will report it
        version = "?"
    shown = lang if engine.name == "tesseract" else "eng/chi"
    return f"{engine.name} {version} ({shown})"


@functools.cache
def _rapidocr_imports() -> bool:
    import importlib.util

    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        return False
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except Exception as e:  # ImportError, or OSError: libGL.so.1 missing for OpenCV
        logger.warning("RapidOCR is installed but does not import (%s); it is not used", e)
        return False
    return True


# --------------------------------------------------------------------------- one image


def _as_image(image: str | os.PathLike[str] | bytes | Image.Image, max_pixels: int) -> Image.Image:
    if isinstance(image, Image.Image):
        im = image
    else:
        fp: Any = io.BytesIO(image) if isinstance(image, bytes) else Path(image)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = Image.open(fp)
            except Image.DecompressionBombError as e:
                found = re.search(r"\((\d+) pixels\)", str(e))
                size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
                name = "" if isinstance(image, bytes) else str(image)
                raise ImageTooLargeError(
                    name, f"image is {size}, over Pillow's decompression-bomb limit; refusing to OCR it"
                ) from e
    w, h = im.size
    if w * h > max_pixels:
        raise ImageTooLargeError(
            "" if isinstance(image, (bytes, Image.Image)) else str(image),
            f"image is {w}×{h} = {w * h:,} pixels, over the OCR limit of {max_pixels:,}; "
            "raise max_pixels= if you trust it",
        )
    return im


def _is_blank(im: Image.Image) -> bool:
    if min(im.size) < _MIN_OCR_SIDE:
        return True
    small = im.convert("L")
    small.thumbnail((512, 512))
    lo, hi = cast("tuple[float, float]", small.getextrema())
    return float(hi) - float(lo) < _BLANK_RANGE


def ocr_image(
    image: str | os.PathLike[str] | bytes | Image.Image,
    *,
    engine: str | OcrEngine | None = "auto",
    lang: str = "eng",
    max_pixels: int = 89_478_485,
    cache: OcrCache | None = None,
) -> OcrResult:
    """OCR one image (a path, encoded bytes or a PIL image).

    Blank or tiny images (under 16 px a side) return an empty result without calling the engine;
    an image over ``max_pixels`` is refused before it is decoded.

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels.
        MissingDependencyError: no engine installed (or the named one is not).
        OcrError: the engine failed on this image.
    """
    eng = pick_engine(engine)
    if eng is None:
        raise MissingDependencyError(f"no OCR engine is installed; {OCR_INSTALL_HINT}")
    im = _as_image(image, max_pixels)
    return _ocr_pil(im, eng, lang, cache)


def _ocr_pil(im: Image.Image, engine: OcrEngine, lang: str, cache: OcrCache | None) -> OcrResult:
    if _is_blank(im):
        return OcrResult("", (), engine.name)
    scale = 1.0
    if max(im.size) > _MAX_OCR_SIDE:
        scale = max(im.size) / _MAX_OCR_SIDE
        declared = "dpi" in im.info
        dpi = _dpi_of(im)
        im = im.resize(
            (max(1, round(im.width / scale)), max(1, round(im.height / scale))), Image.Resampling.LANCZOS
        )
        if declared:  # the same page in fewer pixels: a lower resolution
            im.info["dpi"] = (dpi / scale, dpi / scale)
    key = None
    if cache is not None:
        key = cache.key(im, engine, lang)
        hit = cache.get(key)
        if hit is not None:
            return _scaled(hit, scale)
    angle = _skew_angle(im)
    try:
        if angle:
            gray = im.convert("L")
            turned = gray.rotate(-angle, resample=Image.Resampling.BICUBIC, fillcolor=_paper(gray))
            result = _unrotated(engine.ocr(turned, lang), angle, im.size)
        else:
            result = engine.ocr(im, lang)
    except (OcrError, MissingDependencyError, ConfigurationError):
        raise
    except Exception as e:
        raise OcrError(f"{engine.name} failed: {type(e).__name__}: {e}") from e
    if cache is not None and key is not None:
        cache.put(key, result)
    return _scaled(result, scale)


_MAX_SKEW = 6.0  # degrees; photographed pages are a few degrees off


def _paper(gray: Image.Image) -> int:
    hist = gray.histogram()
    return max(range(256), key=lambda v: hist[v])


def _skew_angle(im: Image.Image) -> float:
    """The angle (degrees, counter-clockwise) text lines are turned by, 0 when under 0.4°.

    Projection profiles: the image is binarized at thumbnail size and turned by candidate angles;
    at the right one the rows are either text or paper, so the row sums vary the most.
    """
    import numpy as np

    small = im.convert("L")
    small.thumbnail((800, 800))
    arr = np.asarray(small, dtype=np.float32)
    if arr.size == 0:
        return 0.0
    threshold = (float(arr.min()) + float(np.median(arr))) / 2
    ink = Image.fromarray(((arr < threshold) * 255).astype(np.uint8))

    def spread(angle: float) -> float:
        rows = np.asarray(ink.rotate(-angle, resample=Image.Resampling.NEAREST), dtype=np.float32).sum(axis=1)
        return float(np.var(np.diff(rows)))

    coarse = max(np.arange(-_MAX_SKEW, _MAX_SKEW + 0.01, 1.0), key=spread)
    fine = max(np.arange(coarse - 0.9, coarse + 0.91, 0.2), key=spread)
    base = spread(0.0)
    if abs(fine) < 0.4 or spread(fine) < base * 1.15:
        return 0.0
    return float(fine)


def _unrotated(result: OcrResult, angle: float, size: tuple[int, int]) -> OcrResult:
    """Map word boxes found on the image turned by ``-angle`` back onto the original image."""
    import math

    cx, cy = size[0] / 2, size[1] / 2
    rad = math.radians(angle)  # PIL rotates counter-clockwise for positive angles (y down)
    cos, sin = math.cos(rad), math.sin(rad)

    def back(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cx + dx * cos + dy * sin, cy - dx * sin + dy * cos

    words = []
    for w in result.words:
        x0, y0, x1, y1 = w.box
        pts = [back(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        words.append(OcrWord(w.text, (min(xs), min(ys), max(xs), max(ys)), w.conf))
    return replace(result, words=tuple(words))


def _scaled(result: OcrResult, scale: float, dx: float = 0.0, dy: float = 0.0) -> OcrResult:
    if scale == 1.0 and dx == 0.0 and dy == 0.0:
        return result
    words = tuple(
        OcrWord(
            w.text,
            (w.box[0] * scale + dx, w.box[1] * scale + dy, w.box[2] * scale + dx, w.box[3] * scale + dy),
            w.conf,
        )
        for w in result.words
    )
    return replace(result, words=words)


# --------------------------------------------------------------------------- cache


class OcrCache:
    """OCR results on disk, one JSON file per image, keyed by the image's pixels, engine and language.

    Files are ``<folder>/<key[:2]>/<key>.json``, written atomically; a damaged file is a miss.

    Args:
        folder: where results go (``<store>/ocr-cache`` during ingest).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(image: Image.Image, engine: OcrEngine, lang: str) -> str:
        h = hashlib.sha256()
        h.update(f"v1|{engine.name}|{engine.version}|{lang}|{image.mode}|{image.size}|".encode())
        h.update(image.tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> Path | None:
        """The entry's file, or ``None`` (logged) when it would lie outside the cache folder."""
        from pagesight.retrieval._images import resolve_stored_path

        return resolve_stored_path(self.folder, f"{key[:2]}/{key}.json", what="OCR cache entry")

    def get(self, key: str) -> OcrResult | None:
        path = self._path(key)
        if path is None:
            return None
        try:
            raw = path.read_text("utf-8")
        except OSError:
            return None  # not cached yet
        try:
            return OcrResult.from_json(json.loads(raw))
        except ValueError as e:  # json.JSONDecodeError is one
            logger.warning("ignoring the damaged OCR cache entry %s (%s); the image is OCR'd again", path, e)
            return None

    def put(self, key: str, result: OcrResult) -> None:
        path = self._path(key)
        if path is None:
            return
        data = json.dumps(result.to_json(), ensure_ascii=False).encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda f: f.write(data))
        except OSError as e:  # a cache that cannot be written only costs time
            logger.warning("could not write the OCR cache %s: %s", path, e)


# --------------------------------------------------------------------------- the rule


def needs_ocr(text: str, width_pt: float, height_pt: float, image_coverage: float) -> bool:
    """Whether a page's text layer is missing or too thin, so the page should be OCR'd (``ocr="auto"``).

    True when the layer has fewer than :data:`OCR_MIN_CHARS` non-space characters, or when raster
    images cover at least :data:`OCR_IMAGE_COVERAGE` of the page and the layer has fewer than
    :data:`OCR_THIN_CHARS_PER_SQIN` characters per square inch.

    Args:
        text: the page's text layer.
        width_pt: page width in points (1/72 inch).
        height_pt: page height in points.
        image_coverage: share of the page area covered by raster images (0-1).
    """
    chars = sum(1 for c in text if not c.isspace())
    if chars < OCR_MIN_CHARS:
        return True
    area_sqin = max(width_pt * height_pt / 5184.0, 1e-6)
    return image_coverage >= OCR_IMAGE_COVERAGE and chars / area_sqin < OCR_THIN_CHARS_PER_SQIN


# --------------------------------------------------------------------------- the page stage


@dataclass(frozen=True, slots=True)
class OcrOptions:
    """How the loaders OCR (see :func:`~pagesight.documents.load_source`).

    Attributes:
        mode: ``"auto"`` (pages whose text layer is missing or thin), ``"always"``, ``"never"``.
        lang: Tesseract languages, ``+``-joined (``"eng"``, ``"deu+eng"``).
        engine: ``"auto"``, ``"tesseract"``, ``"rapidocr"`` or an engine object.
        figures: also OCR large raster images on pages that have text, appending their text.
        dpi: resolution PDF pages are rendered at for OCR.
        cache: folder of the OCR cache, or ``None`` for no cache.
        workers: OCR calls at once (default: the engine's ``max_workers``, the cores for Tesseract).
        on_page: called with the number of images OCR'd so far (progress).
    """

    mode: OcrMode = "auto"
    lang: str = "eng"
    engine: str | OcrEngine | None = "auto"
    figures: bool = True
    dpi: float = DEFAULT_OCR_DPI
    cache: str | os.PathLike[str] | None = None
    workers: int | None = None
    on_page: Callable[[int], None] | None = field(default=None, compare=False)

    def check(self) -> OcrOptions:
        if self.mode not in ("auto", "always", "never"):
            raise ConfigurationError(f"`ocr` must be 'auto', 'always' or 'never', got {self.mode!r}")
        if not isinstance(self.lang, str) or not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", self.lang):
            raise ConfigurationError(
                "`ocr_lang` must be Tesseract language codes joined by '+' (e.g. 'deu+eng'), "
                f"got {self.lang!r}"
            )
        if not (30 <= self.dpi <= 600):
            raise ConfigurationError(f"`ocr_dpi` must be between 30 and 600, got {self.dpi}")
        if self.workers is not None and self.workers < 1:
            raise ConfigurationError(f"`ocr_workers` must be at least 1, got {self.workers}")
        return self


def ocr_options(
    ocr: OcrMode | OcrOptions | None = "auto",
    *,
    ocr_lang: str = "eng",
    ocr_engine: str | OcrEngine | None = "auto",
    ocr_figures: bool = True,
    ocr_dpi: float = DEFAULT_OCR_DPI,
    ocr_cache: str | os.PathLike[str] | None = None,
    ocr_workers: int | None = None,
    ocr_progress: Callable[[int], None] | None = None,
) -> OcrOptions:
    """Build :class:`OcrOptions` from the loaders' ``ocr*`` keywords (an ``OcrOptions`` is returned as is)."""
    if isinstance(ocr, OcrOptions):
        return ocr.check()
    return OcrOptions(
        mode=ocr or "never",
        lang=ocr_lang,
        engine=ocr_engine,
        figures=ocr_figures,
        dpi=ocr_dpi,
        cache=ocr_cache,
        workers=ocr_workers,
        on_page=ocr_progress,
    ).check()


class Region(NamedTuple):
    """An image to OCR for a page: the whole page (``kind="page"``) or a figure on it.

    ``image`` is mapped back to page pixels as ``page = image * scale + (dx, dy)``.
    """

    kind: Literal["page", "figure"]
    image: Image.Image
    scale: float
    dx: float = 0.0
    dy: float = 0.0


class OcrJob(NamedTuple):
    """A page and the images to OCR for it (none: the page passes through)."""

    page: Page
    regions: tuple[Region, ...] = ()
    needed: bool = False  # the layer is missing or thin (whether or not an engine is installed)


def words_path(image: str | os.PathLike[str]) -> Path:
    """The OCR word-box file that sits beside a page image (``<image stem>.words.json``)."""
    p = Path(image)
    return p.with_name(p.stem + ".words.json")


def read_words(image: str | os.PathLike[str]) -> list[OcrWord] | None:
    """The OCR words stored beside a page image, boxes in that image's pixels, or ``None``."""
    path = words_path(image)
    try:
        raw = path.read_text("utf-8")
    except OSError:
        return None
    try:
        return list(OcrResult.from_json(json.loads(raw)).words)
    except ValueError as e:  # json.JSONDecodeError is one
        logger.warning("ignoring the damaged OCR word boxes %s (%s)", path, e)
        return None


def run_ocr(
    jobs: Iterable[OcrJob],
    options: OcrOptions,
    source: str,
    *,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
) -> Iterator[Page]:
    """OCR the regions of each job in a worker pool and yield the pages in order, text filled in.

    ``options.engine`` must be resolved (an engine, or ``None`` for "none installed"); see :class:`OcrStage`.

    Up to ``2 × workers`` pages are in flight, so rendering (the loader, in this thread), OCR (the
    pool) and whatever consumes the pages (embedding) overlap. A page the engine fails on keeps its
    text layer and is reported in a warning; the other pages go on. With no engine installed, pages
    that needed OCR get one warning for the whole source naming the install command. A page's text
    (layer and OCR together) longer than ``max_chars_per_page`` is cut to it, with a warning.
    """
    engine = options.engine if not isinstance(options.engine, str) else pick_engine(options.engine)
    cache = OcrCache(options.cache) if options.cache is not None else None
    workers = options.workers or (engine.max_workers if engine is not None else 1)
    done_count = [0]
    lock = threading.Lock()

    def work(region: Region) -> OcrResult:
        assert engine is not None
        result = _ocr_pil(region.image, engine, options.lang, cache)
        with lock:
            done_count[0] += 1
            n = done_count[0]
        if options.on_page is not None:
            options.on_page(n)
        return _scaled(result, region.scale, region.dx, region.dy)

    missing: list[int] = []
    with_layer: list[int] = []  # of those, pages that have a text layer (--ocr always, a thin layer)
    found_nothing: list[int] = []  # pages without a text layer on which OCR found no text either
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pagesight-ocr")
    pending: deque[tuple[OcrJob, list[concurrent.futures.Future[OcrResult]]]] = deque()

    def finish(job: OcrJob, futures: list[concurrent.futures.Future[OcrResult]]) -> Page:
        page = job.page
        if job.needed and engine is None:
            missing.append(page.page)
            if page.text.strip():
                with_layer.append(page.page)
            return page
        results: list[tuple[Region, OcrResult]] = []
        for region, fut in zip(job.regions, futures, strict=True):
            try:
                results.append((region, fut.result()))
            except ImageTooLargeError:
                raise
            except Exception as e:
                warnings.warn(
                    f"{source} page {page.page}: OCR failed ({e}); indexed with its text layer only",
                    stacklevel=2,
                )
        merged = _merge(page, results, source, job.needed, max_chars_per_page)
        if job.needed and not merged.text.strip():
            found_nothing.append(page.page)
        return merged

    try:
        for job in jobs:
            futures = [pool.submit(work, r) for r in job.regions] if engine is not None else []
            pending.append((job, futures))
            while pending and (len(pending) > 2 * workers or all(f.done() for f in pending[0][1])):
                yield finish(*pending.popleft())
        while pending:
            yield finish(*pending.popleft())
    finally:
        for _, futures in pending:
            for f in futures:
                f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(jobs, "close", None)
        if callable(close):
            close()
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        if not with_layer:
            what = (
                f"{len(missing)} page(s) have no text layer (pages {shown}) and no OCR engine is "
                "installed, so they are indexed as images only (found by file name and page)"
            )
        else:
            blank = len(missing) - len(with_layer)
            what = (
                f"{len(missing)} page(s) were to be OCR'd (pages {shown}) but no OCR engine is installed, "
                "so they are indexed with their text layer only"
                + (f" ({blank} of them have none: found by file name and page only)" if blank else "")
            )
        warnings.warn(f"{source}: {what}; " + OCR_INSTALL_HINT, stacklevel=2)
    if found_nothing:
        warnings.warn(
            f"{source}: {len(found_nothing)} page(s) have no text layer and OCR found no text on them "
            f"({page_list(found_nothing)}); indexed as images only",
            stacklevel=2,
        )


def page_list(numbers: Sequence[int], most: int = 10) -> str:
    """``"page 3"``, ``"pages 2, 5, 9"`` or ``"pages 1, 2, ..., 10, ..."`` (at most ``most`` shown)."""
    shown = ", ".join(map(str, numbers[:most])) + (", ..." if len(numbers) > most else "")
    return f"page {shown}" if len(numbers) == 1 else f"pages {shown}"


def blank_pages_note(source: str, numbers: Sequence[int]) -> str:
    """The one warning per source about its blank pages (no text, nothing drawn), which are kept."""
    return (
        f"{source}: {len(numbers)} blank page(s) kept ({page_list(numbers)}): no text and nothing "
        "drawn; they keep their page numbers and are not OCR'd"
    )


def _merge(
    page: Page, results: list[tuple[Region, OcrResult]], source: str, needed: bool, max_chars: int
) -> Page:
    page_texts = [r.text.strip() for reg, r in results if reg.kind == "page" and r.text.strip()]
    figure_texts = [r.text.strip() for reg, r in results if reg.kind == "figure" and len(r.text.strip()) >= 3]
    words = [w for _, r in results for w in r.words]
    layer = page.text
    src: TextSource
    if page_texts:
        ocr_text = "\n\n".join(page_texts + figure_texts)
        if layer.strip():
            text, src = layer + "\n\n" + ocr_text, "both"
        else:
            text, src = ocr_text, "ocr"
    elif figure_texts:
        text = (layer + "\n\n" if layer.strip() else "") + "\n\n".join(figure_texts)
        src = "both" if layer.strip() else "ocr"
    else:
        if needed and not layer.strip():  # summarized once per source by run_ocr
            logger.info("%s page %d: OCR found no text", source, page.page)
        return page
    if len(text) > max_chars:  # the loaders cut the text layer; the OCR text is cut here
        warnings.warn(
            f"{source} page {page.page}: text of {len(text):,} characters cut to "
            f"max_chars_per_page={max_chars:,}; raise the limit to keep it all",
            stacklevel=3,
        )
        text = text[:max_chars]
    if words and page.image is not None:
        data = json.dumps(
            OcrResult("", tuple(words), results[0][1].engine).to_json(), ensure_ascii=False
        ).encode("utf-8")
        try:
            atomic_write(words_path(page.image), lambda f: f.write(data))
        except OSError as e:
            logger.info("could not write the OCR word boxes of %s page %d: %s", source, page.page, e)
    return replace(page, text=text, text_source=src)


def plain_pages(jobs: Iterable[OcrJob]) -> Iterator[Page]:
    """Pages of jobs that need no OCR (``ocr="never"``)."""
    try:
        for job in jobs:
            yield job.page
    finally:
        close = getattr(jobs, "close", None)
        if callable(close):
            close()


class OcrStage:
    """The OCR step of one source: the engine is picked (and the languages checked) when it is made.

    A loader builds it before reading pages, so a missing named engine or language pack raises
    at the call; then ``stage(jobs)`` turns the loader's :class:`OcrJob` stream into pages.

    Attributes:
        options: the options with ``engine`` resolved to an engine, or ``None`` when none is installed.
        source: the source's name, for warnings.
    """

    def __init__(self, options: OcrOptions, source: str) -> None:
        engine = pick_engine(options.engine) if options.mode != "never" else None
        if isinstance(engine, TesseractEngine):
            engine.check_lang(options.lang)
        self.options = replace(options, engine=engine)
        self.source = source

    def __call__(
        self, jobs: Iterable[OcrJob], *, max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE
    ) -> Iterator[Page]:
        if self.options.mode == "never":
            return plain_pages(jobs)
        return run_ocr(jobs, self.options, self.source, max_chars_per_page=max_chars_per_page)


def ocr_stage(options: OcrOptions, source: str) -> OcrStage:
    """Build the :class:`OcrStage` for one source (see there)."""
    return OcrStage(options, source)

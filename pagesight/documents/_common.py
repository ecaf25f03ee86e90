"""Helpers the loaders share: path checks, staging folders, atomic writes, text clean-up."""

from __future__ import annotations

import math
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pagesight.errors import DocumentLoadError, EmptyDocumentError, SourceNotFoundError

__all__ = [
    "check_file",
    "staging_dir",
    "atomic_write",
    "normalize_text",
    "pixels_at_dpi",
]

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_DROP_AND_EXPAND = str.maketrans(
    {
        "\x00": None,
        "\u00ad": None,  # soft hyphen
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb05": "st",
        "\ufb06": "st",
    }
)


def check_file(path: str | os.PathLike[str], source: str) -> Path:
    """Return ``path`` as a :class:`Path` after checking it is a readable, non-empty file.

    Raises:
        SourceNotFoundError: nothing exists at ``path``.
        DocumentLoadError: ``path`` is a directory or cannot be read.
        EmptyDocumentError: the file has zero bytes.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError as e:
        raise SourceNotFoundError(source, "no such file; check the path") from e
    except OSError as e:
        raise DocumentLoadError(source, f"cannot read the file: {e.strerror or e}") from e
    if p.is_dir():
        raise DocumentLoadError(source, "is a directory; pass the folder to load_folder / pagesight index")
    if st.st_size == 0:
        raise EmptyDocumentError(source, "the file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise DocumentLoadError(source, "cannot read the file: permission denied")
    return p


def staging_dir(image_dir: str | os.PathLike[str] | None) -> Path:
    """Return the folder page images go to, creating it; ``None`` makes a fresh temporary folder."""
    if image_dir is None:
        return Path(tempfile.mkdtemp(prefix="pagesight-pages-"))
    p = Path(image_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p


def atomic_write(dest: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``dest`` through ``write(file)`` into a temporary file, then rename it into place.

    A reader never sees a half-written file, and a failure leaves no temporary file behind.
    """
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def normalize_text(text: str) -> str:
    """Lightly normalize extracted text.

    Ligatures are expanded (``ﬁ`` → ``fi``), soft hyphens dropped, line endings become ``\\n``,
    runs of spaces and tabs become one space, lines are stripped, and more than one blank line
    in a row becomes one (so paragraph breaks survive).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_DROP_AND_EXPAND)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def pixels_at_dpi(points: float, dpi: float) -> int:
    """Pixel count for a length in PDF points (1/72 inch) rendered at ``dpi``, rounded like the renderers."""
    return max(1, math.ceil(points * dpi / 72.0 - 1e-3))

"""Helpers the loaders share: source names, the OS-error boundary, limits, path checks, staging
folders, atomic writes, text clean-up."""

from __future__ import annotations

import atexit
import contextlib
import errno
import math
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pagesight.errors import (
    ConfigurationError,
    DocumentLoadError,
    EmptyDocumentError,
    SourceNotFoundError,
    UnsupportedSourceError,
)

__all__ = [
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_CHARS_PER_PAGE",
    "source_name",
    "is_storable_name",
    "printable_name",
    "reading",
    "os_error",
    "describe_os_error",
    "check_limits",
    "too_many_pages",
    "check_file",
    "staging_dir",
    "atomic_write",
    "normalize_text",
    "pixels_at_dpi",
    "canonical_source",
    "same_source",
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


# --------------------------------------------------------------------------- source names


def is_storable_name(name: str) -> bool:
    """True when ``name`` is valid Unicode text (no lone surrogates), so UTF-8 stores can hold it.

    Python decodes a file name that is not valid UTF-8 with ``surrogateescape`` (``b'caf\\xe9'`` becomes
    ``'caf\\udce9'``); such a string cannot be written to Chroma, JSON or a web page as text.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """``name`` with bytes that are not UTF-8 shown as ``\\xNN`` (what an error message prints)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace") if not is_storable_name(name) else name


def source_name(source: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """The name a source is stored, filtered, listed and deleted under: its path or URL as given.

    This is the one place that decides how source names travel: a name is kept exactly as given
    (``os.fspath``; bytes are decoded with :func:`os.fsdecode`) and must be valid Unicode. A file
    name whose bytes are not UTF-8 (a Latin-1 ``café.pdf`` from an old archive, say) is refused
    rather than stored in an escaped form, because every consumer of the name (Chroma metadata
    filters, ``pagesight sources`` / ``delete``, citations, JSON, the web app) needs real text,
    and one reversible escape would change the stored form of names that use its escape character.

    Example:
        >>> source_name("docs/café.pdf")
        'docs/café.pdf'

    Raises:
        UnsupportedSourceError: the name is not valid UTF-8 (the message says how to rename it).
    """
    text = os.fsdecode(source)
    if is_storable_name(text):
        return text
    raise UnsupportedSourceError(
        printable_name(text),
        "the name is not valid UTF-8 (probably Latin-1 or another legacy encoding); pagesight keeps "
        "source names as UTF-8 text. Rename it to UTF-8, e.g. `convmv -f latin1 -t utf-8 --notest "
        "FILE` (or `mv`), then index it again",
    )


_URL_START = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def canonical_source(name: str) -> str:
    """The name a local file is stored under: its absolute, normalized path; a URL as given.

    ``./examples/x.pdf``, ``examples/x.pdf``, ``examples//x.pdf`` and ``/work/examples/x.pdf``
    (from ``/work``) are one source: the path is made absolute against the current folder and
    ``.``, ``..`` and doubled separators are removed (:func:`os.path.abspath`). Symbolic links are
    not resolved, so the name keeps the folders the user indexed through. An absolute name stays
    the same whichever folder later commands run from; citations show only the file name.

    A name that cannot be a path (a NUL character, not valid UTF-8, empty) is returned as given, so
    the loader refuses it under the name the caller wrote.

    Example:
        >>> import os
        >>> canonical_source("./docs/../docs/a.pdf") == os.path.join(os.getcwd(), "docs", "a.pdf")
        True
        >>> canonical_source("https://example.org/a.pdf")
        'https://example.org/a.pdf'
    """
    if not name or _URL_START.match(name) or "\x00" in name or not is_storable_name(name):
        return name
    try:
        return os.path.abspath(name)
    except (OSError, ValueError):  # the current folder was removed, say
        return name


def same_source(stored: str, given: str) -> bool:
    """Whether ``stored`` (a name in a store, maybe written as typed by an older pagesight, relative
    to the folder it was indexed from) and ``given`` name the same source, read from the current folder."""
    return stored == given or canonical_source(stored) == canonical_source(given)


# --------------------------------------------------------------------------- the OS-error boundary

_OS_ADVICE: dict[int, str] = {
    errno.EACCES: "permission denied; give your user read access (chmod u+r for a file, u+rx for a "
    "folder and each folder above it) or index as a user who can read it",
    errno.EPERM: "operation not permitted; check the file's permissions and attributes",
    errno.EISDIR: "is a folder where a file was expected; pass the folder itself to index its files",
    errno.ENOTDIR: "a part of the path is not a folder; check the path",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?); fix or remove the link",
    errno.ENAMETOOLONG: "the path or one of its names is too long for the file system; move the "
    "file to a shorter path or rename it",
    errno.EIO: "input/output error (a failing disk, or a network mount that went away); copy the "
    "file somewhere else and index the copy",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and try again",
    errno.ENFILE: "too many open files on the system; try again later",
    errno.ENXIO: "not a regular file (a socket or device); index regular files only",
    errno.ENODEV: "not a regular file (a device); index regular files only",
}


def os_error(source: str, error: OSError) -> DocumentLoadError:
    """The :class:`DocumentLoadError` for an OS error met while reading ``source``.

    The message names the path and what to do; a missing path is a :class:`SourceNotFoundError`.
    """
    name = printable_name(source)
    if isinstance(error, FileNotFoundError) or error.errno == errno.ENOENT:
        missing = printable_name(os.fsdecode(error.filename)) if error.filename else name
        where = f" ({missing})" if missing not in (name, os.fspath(Path(name))) else ""
        return SourceNotFoundError(name, f"no such file or folder{where}; check the path (or the link)")
    return DocumentLoadError(name, describe_os_error(error))


def describe_os_error(error: OSError) -> str:
    """What went wrong and what to do, for an OS error met while reading a source (no path)."""
    if isinstance(error, FileNotFoundError) or error.errno == errno.ENOENT:
        return "no such file or folder; check the path (or the link)"
    code = errno.errorcode.get(error.errno or 0, type(error).__name__)
    advice = _OS_ADVICE.get(error.errno or 0)
    if advice is None:
        advice = f"cannot read it: {error.strerror or error}; check the file"
    return f"{advice} [{code}]"


@contextlib.contextmanager
def reading(source: str) -> Iterator[None]:
    """Translate any :class:`OSError` raised inside the block into :class:`DocumentLoadError`.

    Every loader and the folder walk read the file system inside this block, so a permission
    problem, a symlink loop or an over-long path reaches the caller as a typed error naming the
    path (see :func:`os_error`), never as a raw ``PermissionError``.

    Example:
        >>> with reading("scan.png"):  # doctest: +SKIP
        ...     data = open("scan.png", "rb").read()
    """
    try:
        yield
    except OSError as e:
        raise os_error(source, e) from e


# --------------------------------------------------------------------------- limits

DEFAULT_MAX_PAGES = 10_000
"""Most pages a source (PDF, multi-frame image, HTML page) may have before it is refused
(``max_pages=`` / ``--max-pages`` raises it)."""

DEFAULT_MAX_CHARS_PER_PAGE = 200_000
"""Longest page text kept; longer text is cut with a warning (``max_chars_per_page=`` raises it)."""


def check_limits(**limits: int | None) -> None:
    """Check that each given limit (``max_pages=...``) is a whole number of at least 1.

    Raises:
        ConfigurationError: naming the keyword.
    """
    for name, value in limits.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"`{name}` must be a whole number of at least 1, got {value!r}")


def too_many_pages(
    source: str, what: str, count: int | None, limit: int, *, unit: str = "pages"
) -> DocumentLoadError:
    """The refusal of a source with more pages than ``max_pages``.

    Args:
        source: the source's name.
        what: what the pages are, e.g. ``"the PDF has"``, ``"the TIFF has"``.
        count: the page count when it is known up front; ``None`` says "more than ``limit``".
        limit: the ``max_pages`` in force.
        unit: what a page is, when ``count`` is ``None`` (``"pages of about 3,000 characters"``).
    """
    if count is None:
        return DocumentLoadError(
            source,
            f"{what} more than max_pages={limit:,} {unit} (--max-pages {limit}); reading stopped "
            "there. If you mean to index it, raise the limit (--max-pages / max_pages=)",
        )
    return DocumentLoadError(
        source,
        f"{what} {count:,} pages, more than the limit of max_pages={limit:,} (--max-pages {limit}); "
        f"if you mean to index it, raise the limit (max_pages={count}, --max-pages {count})",
    )


# --------------------------------------------------------------------------- files


def check_file(path: str | os.PathLike[str], source: str) -> Path:
    """Return ``path`` as a :class:`Path` after checking it is a readable, non-empty file.

    Raises:
        SourceNotFoundError: nothing exists at ``path``.
        DocumentLoadError: ``path`` is a directory, not a regular file (a FIFO, socket or device)
            or cannot be read (any OS error, see :func:`reading`).
        EmptyDocumentError: the file has zero bytes.
    """
    p = Path(path)
    with reading(source):
        st = p.stat()
    if stat.S_ISDIR(st.st_mode):
        raise DocumentLoadError(source, "is a directory; pass the folder to load_folder / pagesight index")
    if not stat.S_ISREG(st.st_mode):
        # opening a FIFO would wait for a writer forever, and a device never ends
        raise DocumentLoadError(
            source, "is not a regular file (a FIFO, socket or device); index regular files only"
        )
    if st.st_size == 0:
        raise EmptyDocumentError(source, "the file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise DocumentLoadError(source, "cannot read the file: permission denied")
    return p


_TEMP_IMAGE_DIRS: list[Path] = []  # the pagesight-pages-* folders this process made; removed at exit


def _remove_temp_image_dirs() -> None:
    import shutil

    while _TEMP_IMAGE_DIRS:
        shutil.rmtree(_TEMP_IMAGE_DIRS.pop(), ignore_errors=True)


atexit.register(_remove_temp_image_dirs)


def staging_dir(image_dir: str | os.PathLike[str] | None) -> Path:
    """Return the folder page images go to, creating it; ``None`` makes a fresh temporary folder.

    A temporary folder (``pagesight-pages-*`` in the system temp folder) lives as long as the
    process, so the ``Page.image`` paths of pages already handed out stay readable however long the
    caller keeps them; it is removed when the interpreter exits (not after ``SIGKILL`` or
    ``os._exit``). Pass ``image_dir`` to keep the images, or to remove them sooner.
    """
    if image_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="pagesight-pages-"))
        _TEMP_IMAGE_DIRS.append(folder)
        return folder
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

"""Undo an HTTP body's ``Content-Encoding`` a little at a time, every layer's output bounded.

httpx decodes each received chunk whole, so a few kilobytes of ``gzip, gzip``, ``br`` or ``zstd``
can inflate to gigabytes in one call before any size limit is checked. Here each layer is a reader
whose ``read(size)`` returns at most about ``size`` bytes and keeps only a small window of state:

- ``gzip`` / ``x-gzip`` / ``deflate``: :func:`zlib.decompressobj` with ``max_length``
  (several gzip members in a row are read as one body, as ``gzip -d`` does);
- ``br``: brotli's incremental ``Decompressor`` with ``output_buffer_limit`` (brotli 1.2 or newer;
  without it ``br`` is neither asked for nor accepted);
- ``zstd``: zstandard's stream reader with bounded reads and a window of at most 8 MiB (RFC 9659).

Stacked encodings (``gzip, br``) are accepted up to :data:`MAX_LAYERS` layers: each layer is bounded
by itself, so the memory a stack needs grows with its depth only; no server has a reason to stack
more. Unknown encodings are refused rather than indexed as garbage.

Example:
    >>> import io, zlib
    >>> raw = io.BytesIO(zlib.compress(b"hello " * 1000))
    >>> reader = decoding_reader(raw, parse_content_encoding("deflate", "http://x/"), "http://x/")
    >>> len(reader.read(100)) <= 100
    True
"""

from __future__ import annotations

import logging
import zlib
from typing import Any, Protocol

from pagesight.errors import URLFetchError

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_LAYERS",
    "Reader",
    "accept_encoding",
    "decoding_reader",
    "parse_content_encoding",
    "supported_encodings",
]

MAX_LAYERS = 3
"""Most ``Content-Encoding`` layers accepted on one response."""

ZSTD_MAX_WINDOW = 2**23
"""Largest zstd window accepted (8 MiB, the limit RFC 9659 sets for HTTP)."""

_CHUNK = 64 * 1024


class Reader(Protocol):
    """Anything with ``read(size) -> bytes`` that returns ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


def _brotli() -> Any | None:
    """The brotli module when it can bound its output (``output_buffer_limit``), else ``None``."""
    try:
        import brotli
    except ImportError:
        return None
    return brotli if hasattr(brotli.Decompressor(), "can_accept_more_data") else None


def _zstandard() -> Any | None:
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def supported_encodings() -> tuple[str, ...]:
    """The content codings this machine decodes with bounded output (gzip and deflate always)."""
    names = ["gzip", "deflate"]
    if _brotli() is not None:
        names.append("br")
    if _zstandard() is not None:
        names.append("zstd")
    return tuple(names)


def accept_encoding() -> str:
    """The ``Accept-Encoding`` request header: what :func:`supported_encodings` lists."""
    return ", ".join(supported_encodings())


def parse_content_encoding(header: str, url: str) -> list[str]:
    """The codings a ``Content-Encoding`` header lists, in the order the server applied them.

    ``identity`` and empty items are dropped; ``x-gzip`` reads as ``gzip``.

    Raises:
        URLFetchError: a coding this machine cannot decode with bounded output, or more than
            :data:`MAX_LAYERS` of them.
    """
    codings = [c.strip().lower() for c in header.split(",")]
    codings = ["gzip" if c == "x-gzip" else c for c in codings if c and c != "identity"]
    known = supported_encodings()
    for coding in codings:
        if coding not in known:
            hint = ""
            if coding == "br":
                hint = (
                    "; decoding it needs the brotli package, version 1.2 or newer (pip install 'brotli>=1.2')"
                )
            elif coding == "zstd":
                hint = "; decoding it needs the zstandard package (pip install zstandard)"
            raise URLFetchError(
                url,
                f"refused: the server sent Content-Encoding {header.strip()!r}, and {coding!r} is not "
                f"one pagesight decodes (it reads {', '.join(known)}){hint}",
            )
    if len(codings) > MAX_LAYERS:
        raise URLFetchError(
            url,
            f"refused: the server sent Content-Encoding {header.strip()!r}, {len(codings)} layers of "
            f"compression (pagesight decodes at most {MAX_LAYERS}; a decompression bomb?)",
        )
    return codings


class _ZlibReader:
    """gzip (members in a row) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, inner: Reader, coding: str, url: str) -> None:
        self._inner = inner
        self._coding = coding
        self._url = url
        self._wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._d = zlib.decompressobj(self._wbits)
        self._input = b""
        self._fed = False  # the current stream has had input
        self._pending = False  # the last call filled its output: zlib may hold more
        self._tried_raw = coding != "deflate"
        self._done = False
        self._between = False  # a gzip member has ended: another follows only if the magic does

    def _bad(self, e: Exception | str) -> URLFetchError:
        return URLFetchError(
            self._url,
            f"the body is not valid {self._coding} data ({e}), although the server sent Content-Encoding "
            f"{self._coding}",
        )

    def _next_member(self) -> bool:
        """After a gzip member: whether another one follows (else the rest is ignored, as gzip -d does)."""
        while len(self._input) < 2 and (more := self._inner.read(_CHUNK)):
            self._input += more
        self._between = False
        if not self._input or self._input.startswith(b"\x1f\x8b"):
            return True
        logger.debug(  # the rest is not read
            "%s: ignored the bytes after the last gzip member (starting %r)", self._url, self._input[:16]
        )
        self._input = b""
        return False

    def read(self, size: int, /) -> bytes:
        while not self._done:
            if self._between and not self._next_member():
                self._done = True
                break
            if not self._input and not self._pending:
                self._input = self._inner.read(_CHUNK)
                if not self._input:
                    if self._fed:
                        raise self._bad("it ends before its compressed stream does: a cut-off download?")
                    self._done = True
                    break
            data, self._fed = self._input, self._fed or bool(self._input)
            try:
                out = self._d.decompress(data, size)
            except zlib.error as e:
                if not self._tried_raw:  # "deflate" sent as a raw stream, without the zlib header
                    self._tried_raw = True
                    self._wbits = -zlib.MAX_WBITS
                    self._d = zlib.decompressobj(self._wbits)
                    continue
                raise self._bad(e) from e
            self._tried_raw = True
            self._input = self._d.unconsumed_tail
            self._pending = len(out) >= size and not self._d.eof
            if self._d.eof:
                rest = self._d.unused_data
                if self._coding == "gzip":  # another member may follow
                    self._d = zlib.decompressobj(self._wbits)
                    self._input, self._fed, self._between = rest, False, True
                else:
                    self._done = True  # bytes after a deflate stream are ignored, as browsers do
            if out:
                return out
        return b""


class _BrotliReader:
    def __init__(self, inner: Reader, url: str, brotli: Any) -> None:
        self._inner = inner
        self._url = url
        self._error = brotli.error
        self._d = brotli.Decompressor()
        self._fed = False

    def read(self, size: int, /) -> bytes:
        while not self._d.is_finished():  # bytes after the end of the stream are ignored
            try:
                if self._d.can_accept_more_data():
                    data = self._inner.read(_CHUNK)
                    if not data:
                        if self._fed:
                            raise URLFetchError(
                                self._url,
                                "the br body ends before its compressed stream does: a cut-off download?",
                            )
                        return b""
                    self._fed = True
                    out = self._d.process(data, output_buffer_limit=size)
                else:
                    out = self._d.process(b"", output_buffer_limit=size)
            except self._error as e:
                raise URLFetchError(
                    self._url,
                    f"the body is not valid br data ({e}), although the server sent Content-Encoding br",
                ) from e
            if out:
                return bytes(out)
        return b""


class _ZstdReader:
    def __init__(self, inner: Reader, url: str, zstandard: Any) -> None:
        self._url = url
        self._error = zstandard.ZstdError
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._r = decompressor.stream_reader(inner, read_size=_CHUNK, read_across_frames=True)

    def read(self, size: int, /) -> bytes:
        try:
            return bytes(self._r.read(size))
        except self._error as e:
            raise URLFetchError(
                self._url,
                f"the body is not valid zstd data, or needs a window over {ZSTD_MAX_WINDOW // 2**20} MiB "
                f"({e}), although the server sent Content-Encoding zstd",
            ) from e


def decoding_reader(raw: Reader, codings: list[str], url: str) -> Reader:
    """A reader of the decoded body, from a reader of the body as sent.

    Args:
        raw: the body as received (after any chunked transfer coding, before content coding).
        codings: what :func:`parse_content_encoding` returned (applied in this order, so undone in
            the reverse one).
        url: named in errors.

    Raises:
        URLFetchError: while reading, when a layer's data is not valid for its coding.
    """
    reader = raw
    for coding in reversed(codings):
        if coding in ("gzip", "deflate"):
            reader = _ZlibReader(reader, coding, url)
        elif coding == "br":
            reader = _BrotliReader(reader, url, _brotli())
        elif coding == "zstd":
            reader = _ZstdReader(reader, url, _zstandard())
        else:  # parse_content_encoding refuses the rest
            raise URLFetchError(url, f"Content-Encoding {coding!r} is not supported")
    return reader

"""Make untrusted text safe to show on a terminal.

File names, page text, URLs, queries and anything read back from a store are
untrusted: a name such as ``"\\x1b]0;owned\\x07report.pdf"`` retitles the
user's terminal when printed raw, ``"\\x1b[2J"`` clears it, and a right-to-left
override (U+202E) makes ``"evil\\u202efdp.exe"`` read as ``"evilexe.pdf"``.
:func:`safe` turns every such character into a visible escape, the way Python's
``repr`` writes it, and leaves ordinary text (accents, CJK, emoji) alone::

    >>> safe("report\\x1b[2J.pdf")
    'report\\\\x1b[2J.pdf'
    >>> safe("évaluation 評価 📄")
    'évaluation 評価 📄'
    >>> safe("line one\\nline two", multiline=True)
    'line one\\nline two'

Use it on every human-readable output path (the CLI, log lines, the web app's
text); machine output such as ``--json`` stays exact because JSON escapes
control characters itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ["safe", "safe_json", "valid_utf8"]

# Unicode categories escaped: Cc (C0 and C1 controls, DEL), Cf (format
# characters: bidi overrides and isolates, zero-width space, BOM, tag
# characters), Cs (lone surrogates, e.g. from surrogateescape'd non-UTF-8 file
# names), Zl/Zp (U+2028/U+2029, which some terminals and viewers break lines on).
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Format characters that are part of ordinary text and cannot move the cursor or
# reorder what is shown: ZERO WIDTH NON-JOINER (Persian, Indic scripts) and
# ZERO WIDTH JOINER (emoji sequences such as 👨‍👩‍👧).
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})

# Kept as layout when ``multiline=True``; ``\r`` is always escaped because it
# moves the cursor back over what was already printed.
_LAYOUT = frozenset({"\n", "\t"})


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str, multiline: bool) -> bool:
    # Zs (no-break spaces), Co (private use) and Cn (unassigned) are not printable but harmless.
    return (
        not char.isprintable()
        and char not in _KEPT_FORMAT
        and not (multiline and char in _LAYOUT)
        and unicodedata.category(char) in _ESCAPED_CATEGORIES
    )


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes astral characters as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def safe(text: object, *, multiline: bool = False) -> str:
    """Return ``text`` with every character that could control or spoof a terminal escaped.

    Escapes C0/C1 control characters (ESC, BEL, the one-byte CSI ``\\x9b``, CR,
    ...), DEL, format characters that reorder or hide text (bidi overrides such
    as U+202E, zero-width space, BOM, tag characters), line/paragraph separators
    and lone surrogates, as visible ``\\x1b`` / ``\\u202e`` / ``\\udcff`` /
    ``\\U000e0041`` escapes. Everything else is returned unchanged, so a clean
    string comes back as the same value.

    Args:
        text: Anything; non-strings are converted with ``str()`` first.
        multiline: Keep ``\\n`` and ``\\t`` as layout (answer bodies, snippets).
            By default they are escaped too, for one-line output such as source
            names, where a newline could fake a second line of output.

    Returns:
        A string safe to write to a terminal.
    """
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():  # fast path: no Cc/Cf/Cs/Zl/Zp (nor Zs/Co/Cn) at all
        return s
    out: list[str] = []
    for char in s:
        out.append(_escape(char) if _unsafe(char, multiline) else char)
    return "".join(out)


def safe_json(obj: Any, **dumps_options: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False, **dumps_options)``, safe to write to a terminal.

    The characters :func:`safe` escapes are written as JSON ``\\uXXXX`` escapes instead (JSON
    itself only escapes U+0000-U+001F), so ``json.loads`` gives back exactly ``obj``, lone
    surrogates included, while a terminal never sees a raw ESC, C1 control or bidi override::

        >>> safe_json({"source": "a\\x9b2J\\u202e.pdf"})
        '{"source": "a\\\\u009b2J\\\\u202e.pdf"}'

    Args:
        obj: Anything ``json.dumps`` accepts.
        **dumps_options: Passed to ``json.dumps`` (``indent``, ...); ``ensure_ascii`` defaults
            to ``False`` (non-ASCII text stays readable).
    """
    dumps_options.setdefault("ensure_ascii", False)
    text = json.dumps(obj, **dumps_options)
    if text.isprintable():
        return text
    # Outside strings JSON has only ASCII, so only layout (newlines of ``indent``) is kept.
    return "".join(_json_escape(c) if _unsafe(c, True) else c for c in text)


_NOT_A_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # surrogateescape uses U+DC80-U+DCFF


def valid_utf8(text: str) -> str:
    """``text`` with lone surrogates (bytes that were not UTF-8) replaced by U+FFFD.

    A string from ``sys.argv`` or ``os.fsdecode`` holds such bytes as U+DC80-U+DCFF
    (``surrogateescape``); they are turned back into bytes and decoded with U+FFFD for what
    is not UTF-8, so valid multi-byte sequences split that way come back whole. A surrogate
    that stands for no byte (from a Python caller) becomes U+FFFD directly.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _NOT_A_BYTE.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text

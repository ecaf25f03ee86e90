"""``pagesight._terminal``: what reaches a terminal is escaped, what reaches JSON is exact."""

from __future__ import annotations

import json

import pytest

from pagesight._terminal import safe, safe_json

HOSTILE = [
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: retitle the terminal, BEL-terminated
    ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear the screen, cursor home
    ("\x9b31m", "\\x9b31m"),  # the one-byte C1 CSI
    ("\x7f\x00\r", "\\x7f\\x00\\x0d"),  # DEL, NUL, carriage return (overwrites the line)
    ("evil\u202efdp.exe", "evil\\u202efdp.exe"),  # right-to-left override: reads "evilexe.pdf"
    ("a\u2066b\u2069\u200b\ufeff", "a\\u2066b\\u2069\\u200b\\ufeff"),  # isolates, zero width, BOM
    ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
    ("caf\udce9.pdf", "caf\\udce9.pdf"),  # surrogateescape'd Latin-1 byte from a file name
    ("\U000e0041\U000e007f", "\\U000e0041\\U000e007f"),  # invisible tag characters
    ("a\nb\tc", "a\\x0ab\\x09c"),  # one-line output: a newline could fake a second line
]


@pytest.mark.parametrize(("text", "shown"), HOSTILE)
def test_safe_escapes_controls_visibly(text, shown):
    assert safe(text) == shown
    assert safe(safe(text)) == shown  # idempotent: escaping twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "report.pdf",
        "évaluation – naïve",
        "評価レポート",
        "📄 👨\u200d👩\u200d👧",
        "فارسی\u200cها",
        "a\xa0b",
        "",
    ],
)
def test_safe_keeps_ordinary_text_unchanged(text):
    assert safe(text) == text


def test_multiline_keeps_layout_but_not_carriage_returns():
    assert safe("one\ntwo\tthree", multiline=True) == "one\ntwo\tthree"
    assert safe("done\rfaked\x1b[1A", multiline=True) == "done\\x0dfaked\\x1b[1A"


def test_safe_takes_any_object():
    assert safe(42) == "42"
    assert safe(ValueError("bad \x1b[2J name")) == "bad \\x1b[2J name"


def test_safe_json_is_exact_and_terminal_safe():
    obj = {"source": "".join(t for t, _ in HOSTILE), "pages": [1, "é 評 📄"]}
    for options in ({}, {"indent": 2}):
        text = safe_json(obj, **options)
        assert json.loads(text) == obj
        assert all(c.isprintable() or c in "\n " for c in text), text
    assert safe_json(["é"]) == '["é"]'  # non-ASCII text stays readable

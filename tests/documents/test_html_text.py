"""HTML → readable paragraphs → page-sized chunks."""

from __future__ import annotations

import hashlib

import pytest

from pagesight.documents import html_to_paragraphs, load_html_bytes, split_into_pages
from pagesight.documents.html import _FEED, _extract, _OverBudget, decode_html
from pagesight.errors import ConfigurationError, DocumentLoadError, EmptyDocumentError

ARTICLE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Quarterly report</title>
<style>body { color: red }</style><script>var tracking = "SCRIPT-TEXT";</script></head>
<body>
<header><a href="/">HEADER-TEXT</a></header>
<nav><ul><li>NAV-TEXT</li></ul></nav>
<main>
<h1>Revenue &amp; costs</h1>
<p>Revenue grew   by
 <b>12%</b> this quarter.</p>
<p>Line one<br>Line two</p>
<ul><li>first item</li><li>second item</li></ul>
<table><tr><th>Region</th><th>Sales</th></tr><tr><td>North</td><td>40</td></tr></table>
<pre>def f():
    return 1</pre>
<noscript>NOSCRIPT-TEXT</noscript>
</main>
<aside>ASIDE-TEXT</aside>
<footer>FOOTER-TEXT</footer>
</body></html>"""


def test_readable_paragraphs_without_chrome() -> None:
    assert html_to_paragraphs(ARTICLE) == [
        "Quarterly report",
        "Revenue & costs",
        "Revenue grew by 12% this quarter.",
        "Line one\nLine two",
        "- first item",
        "- second item",
        "Region Sales",
        "North 40",
        "def f():\n    return 1",
    ]


def test_chrome_kept_when_it_is_all_there_is() -> None:
    # An unclosed <header> would swallow the page; rather keep the chrome than return nothing.
    assert html_to_paragraphs("<body><header><p>Only text here") == ["Only text here"]


def test_unclosed_head_ends_at_body() -> None:
    assert html_to_paragraphs("<html><head><title>T</title><body><p>hi") == ["T", "hi"]


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("café".encode("latin-1"), "latin-1", "café"),
        (b'<meta charset="windows-1252"><p>caf\xe9</p>', None, "café"),
        ("<p>café</p>".encode(), None, "café"),
        ("<p>café</p>".encode(), "no-such-codec", "café"),
        (b"\xef\xbb\xbf<p>bom</p>", None, "bom"),
    ],
)
def test_decode_html(data: bytes, charset: str | None, expected: str) -> None:
    assert expected in decode_html(data, charset)


def test_split_at_paragraph_boundaries() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 20 for i in range(12)]  # ~115 chars each
    pages = split_into_pages([p.strip() for p in paragraphs], max_chars=300)
    assert len(pages) == 6
    assert all(len(page) <= 300 for page in pages)
    rebuilt = [para for page in pages for para in page.split("\n\n")]
    assert rebuilt == [p.strip() for p in paragraphs]  # nothing lost, nothing cut, order kept


def test_long_paragraph_split_at_sentences() -> None:
    sentences = [f"Sentence number {i} ends here." for i in range(40)]
    pages = split_into_pages([" ".join(sentences)], max_chars=200)
    assert all(len(page) <= 200 for page in pages)
    assert " ".join(pages).split() == " ".join(sentences).split()
    assert all(page.endswith("here.") for page in pages)


def test_unbreakable_word_split_hard() -> None:
    assert split_into_pages(["x" * 250], max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]


def test_heading_moves_with_following_text() -> None:
    html = "<p>" + "a" * 150 + "</p><h2>Section two</h2><p>" + "b" * 150 + "</p>"
    pages = list(load_html_bytes(html.encode(), source="s", page_chars=200))
    assert [p.text for p in pages] == ["a" * 150, "Section two\n\n" + "b" * 150]


def test_load_html_bytes_pages() -> None:
    data = ARTICLE.encode()
    pages = list(load_html_bytes(data, source="https://x/report", page_chars=100))
    assert len(pages) >= 2
    assert [p.page for p in pages] == list(range(1, len(pages) + 1))
    assert all(
        (p.source, p.image, p.width, p.height, p.content_hash)
        == ("https://x/report", None, 0, 0, hashlib.sha256(data).hexdigest())
        for p in pages
    )
    text = "\n\n".join(p.text for p in pages)
    assert "Revenue grew by 12% this quarter." in text
    for hidden in ("SCRIPT", "NAV", "HEADER", "FOOTER", "ASIDE", "NOSCRIPT", "color: red"):
        assert hidden not in text


def test_script_only_page_is_empty() -> None:
    with pytest.raises(EmptyDocumentError, match=r"https://x/app: .*no readable text.*JavaScript"):
        load_html_bytes(
            b"<html><body><div id=root></div><script>render()</script></body></html>", source="https://x/app"
        )


@pytest.mark.parametrize("tag", ["", "<p>", "<pre>"])
def test_one_unbroken_paragraph_stops_at_the_budget(tag: str) -> None:
    # 4 MB of text and no block tag ending a paragraph: parsing stops after the first pieces,
    # not at the end (the text a paragraph holds so far counts before the paragraph ends)
    html = tag + "word " * 800_000
    with pytest.raises(_OverBudget) as caught:
        _extract(html, budget=10_000)
    assert caught.value.fed <= 2 * _FEED < len(html)
    with pytest.raises(DocumentLoadError, match=r"u.html: the HTML page makes more than max_pages=3 pages"):
        load_html_bytes(html.encode(), source="u.html", page_chars=1000, max_pages=3)
    assert len(_extract(tag + "word " * 1000, budget=5000)[0].text) == 4999  # within it: kept whole


def test_page_chars_must_be_sensible() -> None:
    with pytest.raises(ConfigurationError, match="`html_page_chars`"):
        load_html_bytes(b"<p>x</p>", source="s", page_chars=10)

"""Readable text from HTML, split into page-sized chunks (stdlib ``html.parser`` only).

Scripts, styles and page chrome (``nav``, ``header``, ``footer``, ``aside``, ``noscript``, forms)
are dropped; headings, paragraphs, list items, table rows and preformatted blocks are kept as
paragraphs. The text is split at paragraph boundaries into pages of about ``page_chars`` characters.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from pagesight.documents._common import (
    DEFAULT_MAX_CHARS_PER_PAGE,
    DEFAULT_MAX_PAGES,
    check_limits,
    too_many_pages,
)
from pagesight.documents.page import Page, sha256_bytes
from pagesight.errors import ConfigurationError, EmptyDocumentError

__all__ = ["decode_html", "html_to_paragraphs", "split_into_pages", "load_html_bytes"]

_ALWAYS_SKIP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "iframe",
        "object",
        "canvas",
        "select",
        "button",
        "head",
    }
)
_CHROME = frozenset({"nav", "header", "footer", "aside", "form", "dialog"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = (
    frozenset(
        {
            "p",
            "div",
            "section",
            "article",
            "main",
            "li",
            "ul",
            "ol",
            "dl",
            "dt",
            "dd",
            "blockquote",
            "pre",
            "table",
            "thead",
            "tbody",
            "tfoot",
            "tr",
            "caption",
            "figure",
            "figcaption",
            "address",
            "hr",
            "body",
            "details",
            "summary",
            "center",
            "fieldset",
            "legend",
            "html",
        }
    )
    | _HEADINGS
)
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_FEED = 1 << 18  # characters handed to the parser at a time, so an over-long page stops early


class _OverBudget(Exception):
    """The page's text already holds more characters than ``max_pages`` pages can.

    Attributes:
        fed: characters of the HTML handed to the parser when it stopped.
    """

    def __init__(self, fed: int) -> None:
        super().__init__(fed)
        self.fed = fed


@dataclass(frozen=True, slots=True)
class _Para:
    text: str
    heading: bool


class _Extractor(HTMLParser):
    def __init__(self, *, drop_chrome: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_tags = _ALWAYS_SKIP | (_CHROME if drop_chrome else frozenset())
        self.skipping: list[str] = []
        self.pre = 0
        self.heading = 0
        self.title: list[str] = []
        self.in_title = False
        self.buffer: list[str] = []
        self.buffer_heading = False
        self.paragraphs: list[_Para] = []
        self.chars = 0  # characters in ``paragraphs``
        self.buffer_chars = 0  # non-space characters in ``buffer``: it holds at least that much text
        self.title_chars = 0

    def flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer = []
        self.buffer_chars = 0
        lines = [line.rstrip() if self.pre else _WS.sub(" ", line).strip() for line in text.split("\n")]
        text = "\n".join(line for line in lines if line) if not self.pre else "\n".join(lines).strip("\n")
        if text.strip():
            self.paragraphs.append(_Para(text, self.buffer_heading))
            self.chars += len(text)
        self.buffer_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and all(t == "head" for t in self.skipping):
            self.in_title = True
            return
        if tag == "body":  # an unclosed <head> ends here
            self.skipping = [t for t in self.skipping if t != "head"]
        if tag in self.skip_tags:
            if tag not in _VOID:
                self.skipping.append(tag)
            return
        if self.skipping:
            return
        if tag == "br":
            self.buffer.append("\n")
        elif tag in ("td", "th"):
            self.buffer.append(" ")
        elif tag in _BLOCKS:
            self.flush()
            if tag in _HEADINGS:
                self.heading += 1
                self.buffer_heading = True
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.buffer.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if self.skipping:
            if tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag in _BLOCKS:
            if tag == "pre" and self.pre:
                self.flush()
                self.pre -= 1
                return
            if tag in _HEADINGS and self.heading:
                self.heading -= 1
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
            self.title_chars += len(data)
        elif not self.skipping:
            text = data if self.pre else _WS.sub(" ", data)
            self.buffer.append(text)
            self.buffer_chars += len(_WS.sub("", data)) if self.pre else len(text) - text.count(" ")
            if self.heading:
                self.buffer_heading = True

    def close(self) -> None:
        super().close()
        self.flush()


def decode_html(data: bytes, charset: str | None = None) -> str:
    """Decode HTML bytes: the HTTP ``charset``, else a BOM, else ``<meta charset>``, else UTF-8.

    Undecodable bytes become U+FFFD instead of failing.
    """
    candidates: list[str] = []
    if charset:
        candidates.append(charset)
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            candidates.append(name)
    match = _META_CHARSET.search(data[:4096])
    if match:
        candidates.append(match.group(1).decode("ascii", "replace"))
    candidates.append("utf-8")
    for name in candidates:
        try:
            codecs.lookup(name)
        except LookupError:
            continue
        return data.decode(name, errors="replace")
    return data.decode("utf-8", errors="replace")  # pragma: no cover - utf-8 always exists


def _paragraphs(html: str, *, drop_chrome: bool, budget: int | None) -> tuple[str, list[_Para]]:
    parser = _Extractor(drop_chrome=drop_chrome)
    for start in range(0, len(html), _FEED):
        parser.feed(html[start : start + _FEED])
        # text not yet ended by a block tag counts too: one unbroken paragraph stops as early
        if budget is not None and max(parser.chars + parser.buffer_chars, parser.title_chars) > budget:
            raise _OverBudget(min(start + _FEED, len(html)))
    parser.close()
    if budget is not None and max(parser.chars, parser.title_chars) > budget:
        raise _OverBudget(len(html))
    return _WS.sub(" ", "".join(parser.title)).strip(), parser.paragraphs


def _extract(html: str, budget: int | None = None) -> list[_Para]:
    """The page's paragraphs; :class:`_OverBudget` as soon as they hold more than ``budget`` characters."""
    title, paras = _paragraphs(html, drop_chrome=True, budget=budget)
    if not paras:  # an unclosed <header> or a page made only of chrome: keep the chrome rather than nothing
        title, paras = _paragraphs(html, drop_chrome=False, budget=budget)
    if title and not (paras and paras[0].text == title):
        paras.insert(0, _Para(title, True))
    return paras


def html_to_paragraphs(html: str) -> list[str]:
    """Return the readable paragraphs of an HTML document (title first), chrome and scripts dropped.

    Example:
        >>> html_to_paragraphs("<title>T</title><nav>menu</nav><h1>Head</h1><p>Some <b>text</b>.</p>")
        ['T', 'Head', 'Some text.']
    """
    return [p.text for p in _extract(html)]


def _split_long(text: str, max_chars: int) -> list[str]:
    """Split one over-long paragraph at sentence ends, then at spaces, then hard."""
    pieces: list[str] = []
    current = ""
    for unit in _SENTENCE_END.split(text):
        words = [unit] if len(unit) <= max_chars else unit.split(" ")
        for word in words:
            while len(word) > max_chars:
                if current:
                    pieces.append(current)
                    current = ""
                pieces.append(word[:max_chars])
                word = word[max_chars:]
            if current and len(current) + 1 + len(word) > max_chars:
                pieces.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _split(paragraphs: list[_Para], max_chars: int) -> list[str]:
    return list(_iter_split(paragraphs, max_chars))


def _iter_split(paragraphs: list[_Para], max_chars: int) -> Iterator[str]:
    """Yield pages one at a time, so a caller can stop at a page limit."""
    current: list[_Para] = []
    size = 0
    for para in paragraphs:
        units = (
            [para]
            if len(para.text) <= max_chars
            else [_Para(piece, False) for piece in _split_long(para.text, max_chars)]
        )
        for unit in units:
            extra = len(unit.text) + (2 if current else 0)
            if current and size + extra > max_chars:
                carried: list[_Para] = []
                while current and current[-1].heading:  # a heading belongs with what follows it
                    carried.insert(0, current.pop())
                if sum(len(p.text) + 2 for p in carried) + len(unit.text) > max_chars:
                    current += carried  # ... unless they do not fit together: no page over max_chars
                    carried = []
                if current:
                    yield "\n\n".join(p.text for p in current)
                current = carried
                size = sum(len(p.text) for p in current) + 2 * max(0, len(current) - 1)
                extra = len(unit.text) + (2 if current else 0)
            current.append(unit)
            size += extra
    if current:
        yield "\n\n".join(p.text for p in current)


def split_into_pages(paragraphs: list[str], max_chars: int = 3000) -> list[str]:
    """Group paragraphs into pages of at most about ``max_chars`` characters, breaking between paragraphs.

    A paragraph longer than ``max_chars`` is split at sentence ends (then spaces).

    Example:
        >>> split_into_pages(["a" * 6, "b" * 6, "c" * 6], max_chars=15)
        ['aaaaaa\\n\\nbbbbbb', 'cccccc']
    """
    return _split([_Para(p, False) for p in paragraphs if p.strip()], max_chars)


def load_html_bytes(
    data: bytes,
    *,
    source: str,
    charset: str | None = None,
    page_chars: int = 3000,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
) -> Iterator[Page]:
    """Turn an HTML document into text pages (``image=None``, size 0×0).

    Args:
        data: the HTML bytes.
        source: the name pages carry (the URL).
        charset: the encoding the server declared, if any.
        page_chars: about how many characters per page; pages break between paragraphs.
        max_pages: refuse a document that makes more pages than this. Parsing stops as soon as
            the text holds more characters than that many pages can, so a huge page costs little.
        max_chars_per_page: cut a page's text to this many characters (with a warning); matters
            only when it is below ``page_chars``.

    Raises:
        EmptyDocumentError: no readable text (a page that builds its content with JavaScript, say).
        DocumentLoadError: more pages than ``max_pages``.
    """
    if page_chars < 100:
        raise ConfigurationError(f"`html_page_chars` must be at least 100, got {page_chars}")
    check_limits(max_pages=max_pages, max_chars_per_page=max_chars_per_page)
    # No page holds more than page_chars characters of paragraph text, so more text than this
    # cannot fit in max_pages pages: stop parsing there.
    budget = page_chars * max_pages
    what, unit = "the HTML page makes", f"pages of about {page_chars:,} characters"
    try:
        paragraphs = _extract(decode_html(data, charset), budget)
    except _OverBudget:
        raise too_many_pages(source, what, None, max_pages, unit=unit) from None
    pages: list[str] = []
    for text in _iter_split(paragraphs, page_chars):
        if len(pages) == max_pages:
            raise too_many_pages(source, what, None, max_pages, unit=unit)
        if len(text) > max_chars_per_page:
            warnings.warn(
                f"{source} page {len(pages) + 1}: text of {len(text):,} characters cut to "
                f"max_chars_per_page={max_chars_per_page:,}; raise the limit to keep it all",
                stacklevel=2,
            )
            text = text[:max_chars_per_page]
        pages.append(text)
    if not pages:
        raise EmptyDocumentError(
            source, "the HTML page has no readable text (is its content built by JavaScript?)"
        )
    content_hash = sha256_bytes(data)
    return iter(
        [
            Page(source=source, page=i, text=text, image=None, width=0, height=0, content_hash=content_hash)
            for i, text in enumerate(pages, start=1)
        ]
    )

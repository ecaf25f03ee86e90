"""Readable text from HTML, split into page-sized chunks (stdlib ``html.parser`` only).

Scripts, styles and page chrome (``nav``, ``header``, ``footer``, ``aside``, ``noscript``, forms)
are dropped; headings, paragraphs, list items, table rows and preformatted blocks are kept as
paragraphs. The text is split at paragraph boundaries into pages of about ``page_chars`` characters.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

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

    def flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer = []
        lines = [line.rstrip() if self.pre else _WS.sub(" ", line).strip() for line in text.split("\n")]
        text = "\n".join(line for line in lines if line) if not self.pre else "\n".join(lines).strip("\n")
        if text.strip():
            self.paragraphs.append(_Para(text, self.buffer_heading))
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
        elif not self.skipping:
            self.buffer.append(data if self.pre else _WS.sub(" ", data))
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


def _paragraphs(html: str, *, drop_chrome: bool) -> tuple[str, list[_Para]]:
    parser = _Extractor(drop_chrome=drop_chrome)
    parser.feed(html)
    parser.close()
    return _WS.sub(" ", "".join(parser.title)).strip(), parser.paragraphs


def _extract(html: str) -> list[_Para]:
    title, paras = _paragraphs(html, drop_chrome=True)
    if not paras:  # an unclosed <header> or a page made only of chrome: keep the chrome rather than nothing
        title, paras = _paragraphs(html, drop_chrome=False)
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
    pages: list[list[_Para]] = []
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
                if current:
                    pages.append(current)
                current = carried
                size = sum(len(p.text) for p in current) + 2 * max(0, len(current) - 1)
                extra = len(unit.text) + (2 if current else 0)
            current.append(unit)
            size += extra
    if current:
        pages.append(current)
    return ["\n\n".join(p.text for p in page) for page in pages]


def split_into_pages(paragraphs: list[str], max_chars: int = 3000) -> list[str]:
    """Group paragraphs into pages of at most about ``max_chars`` characters, breaking between paragraphs.

    A paragraph longer than ``max_chars`` is split at sentence ends (then spaces).

    Example:
        >>> split_into_pages(["a" * 6, "b" * 6, "c" * 6], max_chars=15)
        ['aaaaaa\\n\\nbbbbbb', 'cccccc']
    """
    return _split([_Para(p, False) for p in paragraphs if p.strip()], max_chars)


def load_html_bytes(
    data: bytes, *, source: str, charset: str | None = None, page_chars: int = 3000
) -> Iterator[Page]:
    """Turn an HTML document into text pages (``image=None``, size 0×0).

    Args:
        data: the HTML bytes.
        source: the name pages carry (the URL).
        charset: the encoding the server declared, if any.
        page_chars: about how many characters per page; pages break between paragraphs.

    Raises:
        EmptyDocumentError: no readable text (a page that builds its content with JavaScript, say).
    """
    if page_chars < 100:
        raise ConfigurationError(f"`html_page_chars` must be at least 100, got {page_chars}")
    pages = _split(_extract(decode_html(data, charset)), page_chars)
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

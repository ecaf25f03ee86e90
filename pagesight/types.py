"""The records pagesight passes between its layers, and the Literal vocabularies they use.

Records only: no behaviour beyond small derived properties, no heavy imports. Every layer imports
its records from here (the old homes, ``pagesight.documents.page``, ``pagesight.retrieval.store``
and ``pagesight.models.base``, re-export them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from pagesight.errors import ConfigurationError

__all__ = [
    "Kind",
    "KINDS",
    "PageInput",
    "TextSource",
    "as_kind",
    "as_text_source",
    "as_page_label",
    "Page",
    "Hit",
    "SourceInfo",
    "EmbedderInfo",
]

Kind = Literal["dense-text", "dense-vl", "late-interaction"]
"""What an embedder produces and a store holds: one vector per text, one vector per page (image
and/or text), or one vector per token (MaxSim)."""

KINDS: tuple[Kind, ...] = ("dense-text", "dense-vl", "late-interaction")

PageInput = Literal["auto", "image", "text", "image_text"]
"""What of a page a multimodal model reads: ``auto`` picks per page (image when rendered)."""

TextSource = Literal["layer", "ocr", "both"]
"""Where a page's text came from: its text layer, OCR of its image, or both."""

_TEXT_SOURCES: tuple[TextSource, ...] = ("layer", "ocr", "both")


def as_kind(value: object) -> Kind:
    """``value`` (read from a store, a flag or a caller) as a :data:`Kind`.

    Raises:
        ConfigurationError: ``value`` is not one of :data:`KINDS`.
    """
    if value in KINDS:
        return cast(Kind, value)
    raise ConfigurationError(f"unknown embedder kind {value!r}; expected one of {', '.join(KINDS)}")


def as_text_source(value: object) -> TextSource:
    """``value`` read from stored metadata as a :data:`TextSource` (anything else reads as ``"layer"``)."""
    return cast(TextSource, value) if value in _TEXT_SOURCES else "layer"


MAX_PAGE_LABEL_CHARS = 32
"""Longest printed page label kept (a PDF may define any string; real labels are short)."""

_LABEL_DROP = re.compile(r"[\x00-\x1f\x7f\[\]()]")


def as_page_label(value: object) -> str | None:
    """A printed page label (from a PDF's page labels or a framework document's ``page_label``) as
    pagesight keeps it: spaces collapsed, control characters and brackets dropped (they would break
    a ``[file p.N (printed L)]`` citation), at most :data:`MAX_PAGE_LABEL_CHARS` characters;
    ``None`` for no label.

    Example:
        >>> as_page_label(" A-3 "), as_page_label(""), as_page_label("[iv]"), as_page_label(7)
        ('A-3', None, 'iv', '7')
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = " ".join(_LABEL_DROP.sub("", str(value)).split())[:MAX_PAGE_LABEL_CHARS].strip()
    return text or None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a source document.

    Attributes:
        source: the path or URL exactly as the caller gave it.
        page: 1-based page number inside the source.
        text: the page's text layer (``""`` for image-only pages).
        image: PNG file of the rendered page, or ``None`` when nothing was rendered
            (HTML text pages, ``render=False``). Loaders write it to a staging folder;
            the store moves it beside its database.
        width: rendered width in pixels (0 without an image).
        height: rendered height in pixels (0 without an image).
        content_hash: SHA-256 hex digest of the source's bytes; with ``page`` it makes the page's id.
        text_source: where ``text`` came from: ``"layer"`` (the document's own text, or none),
            ``"ocr"`` (OCR of the page image) or ``"both"`` (text layer plus OCR of its raster figures,
            or of a page whose layer was too thin).
        page_label: the page's printed label from the PDF's page labels (``"37"``, ``"iv"``,
            ``"A-3"``), or ``None`` when the document defines none. ``page`` stays the 1-based
            index (ids and filters use it); citations add the label when it differs from it.
    """

    source: str
    page: int
    text: str
    image: Path | None
    width: int
    height: int
    content_hash: str
    text_source: TextSource = "layer"
    page_label: str | None = None

    @property
    def id(self) -> str:
        """Deterministic id from (content hash, page): re-ingesting the same bytes upserts."""
        return f"{self.content_hash[:32]}-p{self.page}"


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored page, as search and listing return it.

    Attributes:
        id: the record's id (``Page.id``: content hash prefix and page number).
        source: the path or URL the page came from.
        page: 1-based page number.
        text: the page's text.
        image: the page image inside the store's image folder, or ``None``.
        width: image width in pixels (0 without an image).
        height: image height in pixels (0 without an image).
        content_hash: SHA-256 of the source's bytes when it was indexed.
        score: cosine similarity to the query for search results (higher is closer); 0.0 from
            :meth:`PageStore.get` and :meth:`PageStore.pages`.
        text_source: where the text came from: ``"layer"``, ``"ocr"`` or ``"both"`` (see
            :attr:`pagesight.documents.Page.text_source`).
        page_label: the printed page label (``"37"``, ``"iv"``), or ``None`` when the source has
            none or was indexed before labels were stored (see :attr:`Page.page_label`).
    """

    id: str
    source: str
    page: int
    text: str
    image: Path | None
    width: int
    height: int
    content_hash: str
    score: float
    text_source: TextSource = "layer"
    page_label: str | None = None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """One indexed source.

    Attributes:
        source: the path or URL as it was indexed.
        pages: how many pages of it the store holds.
        content_hash: SHA-256 of the source's bytes when it was indexed.
    """

    source: str
    pages: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    """What a store records about the embedder that wrote it.

    Attributes:
        model: the model's id (Hub id, local folder name or Ollama model name).
        revision: pinned revision, or ``None`` for local folders and Ollama models.
        dimensions: length of the vectors the embedder returns.
        kind: ``"dense-text"``, ``"dense-vl"`` (pages embedded as image and/or text) or
            ``"late-interaction"``.
    """

    model: str
    revision: str | None
    dimensions: int
    kind: Kind

    def describe(self) -> str:
        rev = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.model}{rev} ({self.kind}, {self.dimensions}-d)"

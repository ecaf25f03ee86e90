"""The page record every loader yields and the store keeps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Page", "page_id", "sha256_file", "sha256_bytes"]


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
    """

    source: str
    page: int
    text: str
    image: Path | None
    width: int
    height: int
    content_hash: str
    text_source: Literal["layer", "ocr", "both"] = "layer"

    @property
    def id(self) -> str:
        """Deterministic id from (content hash, page): re-ingesting the same bytes upserts."""
        return page_id(self.content_hash, self.page)


def page_id(content_hash: str, page: int) -> str:
    """Return the store id of ``page`` (1-based) of the source whose bytes hash to ``content_hash``."""
    return f"{content_hash[:32]}-p{page}"


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()

"""The page record every loader yields and the store keeps."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pagesight.types import Page

__all__ = ["Page", "page_id", "sha256_file", "sha256_bytes"]


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

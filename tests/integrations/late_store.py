"""A small MultiVectorStore of given texts for the late-interaction retriever tests (both frameworks)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from pagesight.documents.page import Page
from pagesight.models.colembed import ColEmbedEncoder
from pagesight.retrieval.multivector import MultiVectorStore


def build_store(
    folder: Path, encoder: ColEmbedEncoder, source: str, texts: Sequence[str]
) -> MultiVectorStore:
    """A store of one ``source`` whose pages are ``texts`` (odd pages with a rendered image)."""
    from PIL import Image

    staging = folder / "staging"
    staging.mkdir(parents=True)
    content_hash = hashlib.sha256(source.encode()).hexdigest()
    pages = []
    for number, text in enumerate(texts, start=1):
        image = None
        if number % 2:
            image = staging / f"page-{number}.png"
            Image.new("RGB", (20, 28), (number * 40, 90, 160)).save(image)
        size = (20, 28) if image is not None else (0, 0)
        pages.append(Page(source, number, text, image, *size, content_hash))
    store = MultiVectorStore(folder / "store")
    store.add_source(pages, encoder.encode_documents([p.text for p in pages]), embedder=encoder.info)
    return store

"""A small PageStore of image-only, text-only and image+text pages for the reranker tests (both frameworks).

With the stand-in rerank-vl (logit = distinct query words in the text + 2 x redness of the image,
+- 0.01), :data:`QUERY` ranks the pages in :data:`EXPECTED_ORDER`: the pure red image-only page first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pagesight.documents.page import Page
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import PageStore

SOURCE = "scan.pdf"
# (text, image colour or None), page numbers from 1
PAGES: list[tuple[str, tuple[int, int, int] | None]] = [
    ("Snow in the mountains.", None),
    ("Invoice 42 is attached.", None),
    ("", (255, 0, 0)),  # image only, pure red: the stand-in's favourite
    ("", (0, 0, 255)),  # image only, pure blue
    ("Invoice page.", (255, 191, 191)),  # text and a pink image
]
QUERY = "invoice total"
EXPECTED_LOGITS = {1: 0.0, 2: 1.0, 3: 2.0, 4: -1.0, 5: 1.0 + 2 * (1 - 191 / 255)}
EXPECTED_ORDER = [3, 5, 2, 1, 4]
EMBEDDER = EmbedderInfo("test/axes", None, 8, "dense-vl")


def build_store(folder: Path) -> PageStore:
    """Write :data:`PAGES` into an embedded PageStore in ``folder / "store"``.

    Page ``n`` gets the ``n``-th unit axis of :data:`EMBEDDER`'s 8-d space as its vector.
    """
    from PIL import Image

    staging = folder / "staging"
    staging.mkdir(parents=True)
    content_hash = hashlib.sha256(SOURCE.encode()).hexdigest()
    pages = []
    for number, (text, colour) in enumerate(PAGES, start=1):
        image = None
        if colour is not None:
            image = staging / f"page-{number}.png"
            Image.new("RGB", (24, 32), colour).save(image)
        size = (24, 32) if image is not None else (0, 0)
        pages.append(Page(SOURCE, number, text, image, *size, content_hash))
    store = PageStore(folder / "store")
    store.add_source(pages, np.eye(len(pages), 8, dtype=np.float32), embedder=EMBEDDER)
    return store

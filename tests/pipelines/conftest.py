from __future__ import annotations

from pathlib import Path

import pytest


def write_pdf(path: Path, pages: list[str | None]) -> Path:
    """A real PDF with one page per entry: text, or ``None`` for an image-only page (a drawing)."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=400, height=500)
        if text is None:
            page.draw_rect(pymupdf.Rect(50, 50, 350, 450), color=(0, 0, 1), fill=(0.5, 0.7, 1))
        else:
            page.insert_textbox(pymupdf.Rect(30, 30, 370, 470), text, fontsize=11)
    doc.save(str(path))
    doc.close()
    return path


@pytest.fixture(scope="session")
def encoder():
    from pagesight.models.matryoshka import MatryoshkaEncoder

    enc = MatryoshkaEncoder("all-minilm-l6-v2")
    enc.load()
    return enc


GARDEN = [
    "Tomatoes need full sun and regular watering. Stake the plants so the fruit stays off the soil.",
    "Compost improves soil structure. Turn the heap every two weeks to keep it aerobic and warm.",
]
NETWORK = [
    "To configure a static IP address, edit the interfaces file and restart the networking service.",
    "A firewall filters packets. Use nftables rules to allow SSH on port 22 and drop other traffic.",
    None,
]


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    return {
        "garden": write_pdf(docs / "garden.pdf", GARDEN),
        "network": write_pdf(docs / "network.pdf", NETWORK),
    }

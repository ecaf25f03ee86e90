"""A small real index for the page retriever, loader and framework tests: two PDFs written here, MiniLM."""

from __future__ import annotations

from pathlib import Path

from pagesight import Index
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf

FIREWALL = "nftables rule to allow ssh on port 22"
COMPOST = "how often should the compost heap be turned"


def write_docs(folder: Path) -> dict[str, Path]:
    """garden.pdf (2 text pages) and network.pdf (2 text pages and a drawing) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "garden": write_pdf(folder / "garden.pdf", GARDEN),
        "network": write_pdf(folder / "network.pdf", NETWORK),
    }


def build_index(folder: Path, docs: dict[str, Path]) -> Path:
    """A store of both documents written through ``Index.create`` with the offline profile."""
    location = folder / "store"
    with Index.create(location, profile="offline") as index:
        report = index.add(list(docs.values()), show_progress=False)
        assert report.ok and report.pages_indexed == 5, report.summary()
    return location

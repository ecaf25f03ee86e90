"""Documents for the web app tests: generated PDFs, one with a distinctive fact, and a corrupt one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.conftest import write_pdf

FACT = "The Vellmar lighthouse keeper logs the fog horn at 04:10 every morning."
QUESTION = "When does the Vellmar lighthouse keeper log the fog horn?"

LIGHTHOUSE = [
    "Harbour notes. Tide tables are posted weekly by the harbour office on the east quay.",
    f"Lighthouse duties. {FACT} The lamp uses a Fresnel lens of the second order.",
]
GARDEN = ["Tomatoes need full sun and regular watering. Stake the plants so the fruit stays off the soil."]


@pytest.fixture
def uploads(tmp_path: Path) -> dict[str, Path]:
    """Files as Gradio hands them over: in a temporary folder, under the user's file names."""
    folder = tmp_path / "gradio-upload"
    folder.mkdir()
    broken = folder / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n garbage garbage")  # MuPDF: cannot open, damaged
    return {
        "lighthouse": write_pdf(folder / "lighthouse.pdf", LIGHTHOUSE),
        "garden": write_pdf(folder / "garden.pdf", GARDEN),
        "broken": broken,
    }

"""Every example script runs in its offline form (so the examples never rot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_indexes_the_examples_and_cites_the_answering_page(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "Why is sqrt(2) squared not exactly 2 in R?",
            "--store",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 source(s) indexed (125 pages)" in proc.stdout
    answer_lines = [line for line in proc.stdout.splitlines() if line.startswith("“")]
    assert answer_lines and answer_lines[0].endswith("[R-FAQ.pdf p.41]"), proc.stdout

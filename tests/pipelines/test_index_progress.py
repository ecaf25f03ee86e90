"""``pagesight index`` piped (not a terminal): plain progress lines, one summary line per source."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pagesight.pipelines.ingest import IngestProgress, ingest
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf

ROOT = Path(__file__).resolve().parents[2]


def test_index_piped_prints_plain_progress_and_one_summary_per_source(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "garden.pdf", GARDEN)
    write_pdf(docs / "network.pdf", NETWORK)
    missing = tmp_path / "missing.pdf"
    cmd = [
        sys.executable,
        "-m",
        "pagesight",
        "index",
        str(docs),
        str(missing),
        "--store",
        str(tmp_path / "s"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=300)
    assert out.returncode == 1, out.stderr  # the missing file failed; the others are indexed
    assert "    warning: " in out.stderr  # network.pdf's image-only page, under its summary line
    lines = [
        line for line in out.stderr.splitlines() if not line.startswith(("pagesight: ", "    warning: "))
    ]
    assert lines[0] == "indexing 3 source(s), 5 pages"  # counted before the first page
    # after the first PDF (2 of 5 pages) a tenth is crossed: a plain line, with % and ETA
    assert re.fullmatch(r"indexed 2/5 pages \(40%\), \d+\.\d pages/s, ETA \d+s", lines[1]), lines
    assert lines[2] == f"  indexed    {docs / 'garden.pdf'} (2 pages)"
    assert re.fullmatch(r"indexed 5/5 pages \(100%\), \d+\.\d pages/s, ETA 0s", lines[3]), lines
    assert lines[4] == f"  indexed    {docs / 'network.pdf'} (3 pages)"
    assert lines[5].startswith(f"  FAILED {missing}: ")
    assert re.fullmatch(r"indexed 5 pages in \d+s, \d+\.\d pages/s", lines[6]), lines
    assert lines[7] == "2 source(s) indexed (5 pages), 0 unchanged, 1 failed"
    assert len(lines) == 8


def test_ingest_reports_progress_with_totals_counted_up_front(tmp_path: Path, encoder) -> None:
    from pagesight.retrieval.store import PageStore

    a = write_pdf(tmp_path / "a.pdf", GARDEN)
    b = write_pdf(tmp_path / "b.pdf", NETWORK)
    seen: list[IngestProgress] = []
    store = PageStore(tmp_path / "store")
    ingest([a, b], store, encoder, batch_size=2, show_progress=False, on_progress=seen.append)
    assert [(p.pages_done, p.pages_total, p.sources_done) for p in seen] == [
        (0, 5, 0),  # before the first page: both PDFs counted
        (2, 5, 0),  # a.pdf's batch
        (2, 5, 1),  # a.pdf done
        (4, 5, 1),  # b.pdf in batches of 2
        (5, 5, 1),
        (5, 5, 2),
    ]
    assert seen[2].result is not None and seen[2].result.status == "indexed"
    again: list[IngestProgress] = []
    ingest([a, b], store, encoder, show_progress=False, on_progress=again.append)
    # unchanged sources add no pages: the total drops to what was really done
    assert [(p.pages_done, p.pages_total, p.sources_done) for p in again] == [(0, 5, 0), (0, 3, 1), (0, 0, 2)]

"""``pagesight search ... | head -1``: a reader that goes away ends the command quietly.

Each command runs in a real subprocess whose stdout is a real pipe with its read end already
closed (what ``head -1`` leaves once it has its line), so the first write meets EPIPE. The
command must exit with status 141 (128 + SIGPIPE, as the shell reports for ``cat`` or ``grep``
in that place) and print no traceback and no "Exception ignored" line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pagesight.cli import PIPE_CLOSED
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, encoder: Any) -> Path:
    folder = tmp_path_factory.mktemp("pipe")
    docs = [write_pdf(folder / "garden.pdf", GARDEN), write_pdf(folder / "network.pdf", NETWORK[:2])]
    pages = PageStore(folder / "store")
    assert ingest(docs, pages, encoder, show_progress=False, ocr="never").ok
    pages.close()
    (folder / "q.jsonl").write_text(
        json.dumps({"qid": "1", "query": "compost heap", "relevant": ["garden.pdf#2"]}) + "\n"
    )
    return folder


def _run_into_closed_pipe(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line is written
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PAGESIGHT_ONNX_QUERIES": "1"}
    try:
        return subprocess.run(
            [sys.executable, "-m", "pagesight", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "compost heap", "--store", "store"],
        ["search", "compost heap", "--store", "store", "--json"],
        ["ask", "How often should the compost heap be turned?", "--store", "store"],
        ["eval", "--store", "store", "--queries", "q.jsonl"],
        ["sources", "--store", "store"],
        ["cluster", "-n", "2", "--store", "store"],
    ],
    ids=["search", "search-json", "ask", "eval", "sources", "cluster"],
)
def test_a_closed_pipe_ends_the_command_quietly(store: Path, argv: list[str]) -> None:
    done = _run_into_closed_pipe(argv, store)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == PIPE_CLOSED == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err

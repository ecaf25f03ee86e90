"""Index the example PDFs offline and answer a question with a cited page.

    python examples/quickstart.py [--store DIR] [QUESTION]

Everything runs on the CPU with the bundled all-MiniLM-L6-v2 model and BM25 (profile ``offline``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pagesight.models.matryoshka import MatryoshkaEncoder
from pagesight.pipelines.answer import ExtractiveGenerator, answer
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore

HERE = Path(__file__).parent
QUESTION = "How do I find out which package a file belongs to?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("question", nargs="?", default=QUESTION)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = PageStore(args.store or Path(tmp) / "store")
        encoder = MatryoshkaEncoder("all-minilm-l6-v2")
        report = ingest([HERE], store, encoder)
        print(report.summary())
        result = answer(args.question, PageSearcher(store, encoder), ExtractiveGenerator(encoder))
        print(f"\nQ: {result.question}\n{result.text}")
        for c in result.citations:
            print(f"  cited: {Path(c.source).name} p.{c.page}")


if __name__ == "__main__":
    main()

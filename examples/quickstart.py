"""Index the example PDFs offline and answer a question with a cited page.

    python examples/quickstart.py [--store DIR] [QUESTION]

Everything runs on the CPU with the bundled all-MiniLM-L6-v2 model and BM25 (profile ``offline``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pagesight import Index

HERE = Path(__file__).parent
QUESTION = "How do I find out which package a file belongs to?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("question", nargs="?", default=QUESTION)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Index.create(args.store or Path(tmp) / "store", profile="offline") as index,
    ):
        report = index.add([HERE])
        print(report.summary())
        for hit in index.search("floating point equality", k=3):
            print(f"  {hit.score:.3f}  {Path(hit.source).name} p.{hit.page}")
        result = index.ask(args.question)
        print(f"\nQ: {result.question}\n{result.text}")
        for c in result.citations:
            print(f"  cited: {Path(c.source).name} p.{c.page}")


if __name__ == "__main__":
    main()

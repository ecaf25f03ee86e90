"""Answer from the example PDFs with a local Ollama model that reads the page images.

    ollama pull gemma3:4b                        # a vision model; text models (llama3.2) get page text only
    python examples/ollama_answer.py [--model gemma3:4b] [--store DIR] [QUESTION]

Pages are embedded offline (all-MiniLM-L6-v2 + BM25); the answer streams as the model writes it,
then the cited pages are listed. The server address comes from ``$OLLAMA_HOST`` (default
``http://127.0.0.1:11434``); without a server you get a message saying how to start one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from pagesight import Index
from pagesight.errors import PagesightError
from pagesight.pipelines.ollama import OllamaGenerator

HERE = Path(__file__).parent
QUESTION = "Why do Debian releases have names like bookworm?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("question", nargs="?", default=QUESTION)
    ap.add_argument("--model", default="gemma3:4b", help="Ollama chat or vision model")
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    generator = OllamaGenerator(args.model, host=os.environ.get("OLLAMA_HOST"), max_images=2)
    try:
        generator.check()  # server up and model pulled, else a message saying what to do, before indexing
    except PagesightError as e:
        print(e, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(args.store or Path(tmp) / "store", profile="offline")
        print(index.add([HERE], show_progress=False).summary())
        try:
            reads = "page images + text" if generator.vision else "page text"
            print(f"\nQ: {args.question}\n({args.model} reads the {reads})")
            result = index.ask(
                args.question, generator, k=4, on_token=lambda piece: print(piece, end="", flush=True)
            )
        except PagesightError as e:
            print(f"\n{e}", file=sys.stderr)
            return 1
        print()
        for c in result.citations:
            print(f"  cited: {Path(c.source).name} p.{c.page} (score {c.score:.3f})")
        for u in result.unmatched_citations:
            print(f"  not a retrieved page: {u}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

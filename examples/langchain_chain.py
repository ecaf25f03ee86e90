"""Answer questions about the example PDFs with pagesight's LangChain chain and a local Ollama model.

    ollama pull llama3.2                     # a text model; with --images use a vision model (gemma3:4b)
    python examples/langchain_chain.py [--model llama3.2] [--images] [--reranker nanoranker]
                                       [--store DIR] [--sources PDF...] [QUESTION]

Pages are embedded offline (all-MiniLM-L6-v2 fused with BM25); ``ChatOllama`` writes the answer,
which streams as the model writes it, then the cited pages are listed. The server address comes
from ``$OLLAMA_HOST`` (default ``http://127.0.0.1:11434``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

try:
    from langchain_ollama import ChatOllama
    from ollama import ResponseError
except ImportError as e:  # not in the core install: say which extra brings it
    sys.exit(
        f"{Path(__file__).name} needs {e.name or 'langchain-ollama'}: "
        'pip install "pagesight[examples]" (or: pip install langchain-ollama)'
    )

from pagesight import Index
from pagesight.pipelines import build_langchain_chain

HERE = Path(__file__).parent
QUESTION = "Why do Debian releases have names like bookworm?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("question", nargs="?", default=QUESTION)
    ap.add_argument("--model", default="llama3.2", help="Ollama chat model (a vision model with --images)")
    ap.add_argument("--images", action="store_true", help="send the page images too (vision models)")
    ap.add_argument("--reranker", default=None, help="rerank the pages first, e.g. nanoranker")
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--sources", nargs="+", type=Path, default=[HERE], help="PDFs or folders to index")
    args = ap.parse_args()
    host = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(args.store or Path(tmp) / "store", profile="offline")
        print(index.add(args.sources, show_progress=False).summary())
        chain = build_langchain_chain(
            ChatOllama(model=args.model, base_url=host, temperature=0),
            store=index.store,
            embedder=index.encoder,
            reranker=args.reranker,
            k=4,
            images=args.images,
        )
        print(f"\nQ: {args.question}")
        final: dict[str, Any] = {}
        try:
            for chunk in chain.stream(args.question):
                print(chunk.get("answer", ""), end="", flush=True)
                if "citations" in chunk:  # the last chunk: citations, unmatched ones, retrieved pages
                    final = chunk
        except (ConnectionError, httpx.ConnectError, ResponseError) as e:
            print(
                f"\nOllama at {host}: {e}\nStart it with `ollama serve`, then `ollama pull {args.model}`.",
                file=sys.stderr,
            )
            return 1
        print()
        for c in final["citations"]:
            print(f"  cited: {Path(c['source']).name} p.{c['page']} (score {c['score']:.3f})")
        for u in final["unmatched_citations"]:
            print(f"  not a retrieved page: {u}")
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Answer questions about the example PDFs with pagesight's LlamaIndex query engine and Ollama.

    ollama pull gemma3:4b                    # a vision model gets the page images; llama3.2 the text only
    python examples/llamaindex_engine.py [--model gemma3:4b] [--reranker nanoranker]
                                         [--store DIR] [--sources PDF...] [QUESTION]

Pages are embedded offline (all-MiniLM-L6-v2 fused with BM25); LlamaIndex's ``Ollama`` LLM writes
the answer, streamed as the model writes it; page images are sent when the model reports the
``vision`` capability. The server address comes from ``$OLLAMA_HOST`` (default
``http://127.0.0.1:11434``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx

try:
    from llama_index.llms.ollama import Ollama
    from ollama import ResponseError
except ImportError as e:  # not in the core install: say which extra brings it
    sys.exit(
        f"{Path(__file__).name} needs {e.name or 'llama-index-llms-ollama'}: "
        'pip install "pagesight[examples]" (or: pip install llama-index-llms-ollama)'
    )

from pagesight import Index
from pagesight.pipelines import build_llamaindex_query_engine

HERE = Path(__file__).parent
QUESTION = "Why is sqrt(2) squared not exactly 2 in R?"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("question", nargs="?", default=QUESTION)
    ap.add_argument("--model", default="gemma3:4b", help="Ollama chat or vision model")
    ap.add_argument("--reranker", default=None, help="rerank the pages first, e.g. nanoranker")
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--sources", nargs="+", type=Path, default=[HERE], help="PDFs or folders to index")
    args = ap.parse_args()
    host = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(args.store or Path(tmp) / "store", profile="offline")
        print(index.add(args.sources, show_progress=False).summary())
        engine = build_llamaindex_query_engine(
            Ollama(model=args.model, base_url=host, request_timeout=300.0, temperature=0.0),
            store=index.store,
            embedder=index.encoder,
            reranker=args.reranker,
            k=4,
            max_images=2,
            streaming=True,
        )
        print(f"\nQ: {args.question}")
        try:
            response = engine.query(args.question)
            for piece in response.response_gen:
                print(piece, end="", flush=True)
        except (ConnectionError, httpx.ConnectError, ResponseError) as e:
            print(
                f"\nOllama at {host}: {e}\nStart it with `ollama serve`, then `ollama pull {args.model}`.",
                file=sys.stderr,
            )
            return 1
        print()
        for node in response.source_nodes:
            meta = node.node.metadata
            print(f"  shown: {Path(meta['source']).name} p.{meta['page']} (score {node.score:.3f})")
        for c in response.metadata["citations"]:
            print(f"  cited: {Path(c['source']).name} p.{c['page']}")
        for u in response.metadata["unmatched_citations"]:
            print(f"  not a retrieved page: {u}")
        index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

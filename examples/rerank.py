"""Rerank retrieved pages with a cross-encoder-style reranker, offline.

    python examples/rerank.py [--store DIR] [--reranker NAME] [QUERY]

Retrieves 20 candidate pages (all-MiniLM-L6-v2 fused with BM25), then re-scores them with
``nanoranker`` (a small trained ONNX reranker from PyPI, CPU). On a GPU, ``--reranker
llama-nemotron-rerank-vl-1b-v2`` scores each page image and text with NVIDIA's VL reranker.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pagesight import Index

HERE = Path(__file__).parent
QUERY = "Why do Debian releases have names like bookworm?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("query", nargs="?", default=QUERY)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--reranker", default="nanoranker")
    args = ap.parse_args()
    trust = args.reranker.startswith("nvidia/")  # NVIDIA's reranker runs its own (pinned) code
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(args.store or Path(tmp) / "store", profile="offline", trust_remote_code=trust)
        print(index.add([HERE], show_progress=False).summary())
        before = index.search(args.query, k=5)
        after = index.search(args.query, k=5, reranker=args.reranker, rerank_candidates=20)
        index.close()
        for name, hits in (("retrieved (hybrid)", before), (f"reranked by {args.reranker}", after)):
            print(f"\n{name}:")
            for h in hits:
                print(f"  {h.score:7.3f}  {Path(h.source).name} p.{h.page}")


if __name__ == "__main__":
    main()

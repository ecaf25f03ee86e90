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

from pagesight.models.matryoshka import MatryoshkaEncoder
from pagesight.models.rerank import Reranker
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore

HERE = Path(__file__).parent
QUERY = "Why do Debian releases have names like bookworm?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("query", nargs="?", default=QUERY)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--reranker", default="nanoranker")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = PageStore(args.store or Path(tmp) / "store")
        encoder = MatryoshkaEncoder("all-minilm-l6-v2")
        print(ingest([HERE], store, encoder, show_progress=False).summary())
        before = PageSearcher(store, encoder).search(args.query, k=5)
        reranker = Reranker(args.reranker, trust_remote_code=args.reranker.startswith("nvidia/"))
        after = PageSearcher(store, encoder, reranker=reranker, rerank_candidates=20).search(args.query, k=5)
        for name, hits in (("retrieved (hybrid)", before), (f"reranked by {args.reranker}", after)):
            print(f"\n{name}:")
            for h in hits:
                print(f"  {h.score:7.3f}  {Path(h.source).name} p.{h.page}")


if __name__ == "__main__":
    main()

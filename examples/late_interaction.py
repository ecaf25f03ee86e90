"""Late interaction offline: index the example PDFs as token vectors and search them with MaxSim.

    python examples/late_interaction.py [--store DIR] [QUERY]

Uses ``minilm-tokens`` (all-MiniLM-L6-v2 read token by token, bundled, CPU). With a GPU and the
weights, swap in ``ColEmbedEncoder("nvidia/llama-nemoretriever-colembed-1b-v1", trust_remote_code=True)``
(non-commercial license) to embed the page images instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pagesight.models.colembed import ColEmbedEncoder
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.search import PageSearcher

HERE = Path(__file__).parent
QUERY = "floating point numbers are not exactly equal"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("query", nargs="?", default=QUERY)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder = ColEmbedEncoder("minilm-tokens")
        store = MultiVectorStore(args.store or Path(tmp) / "late")
        print(ingest([HERE / "R-FAQ.pdf"], store, encoder, show_progress=False).summary())
        exact = PageSearcher(store, encoder, mode="dense", exhaustive=True).search(args.query, k=3)
        fused = PageSearcher(store, encoder).search(args.query, k=3)
        for name, hits in (("MaxSim over every page", exact), ("MaxSim fused with BM25", fused)):
            print(f"\n{name}:")
            for h in hits:
                print(f"  {h.score:8.3f}  {Path(h.source).name} p.{h.page}")


if __name__ == "__main__":
    main()

"""Late interaction offline: index the example PDFs as token vectors and search them with MaxSim.

    python examples/late_interaction.py [--store DIR] [QUERY]

Uses ``minilm-tokens`` (all-MiniLM-L6-v2 read token by token, bundled, CPU). With a GPU and the
weights, swap in ``model="nvidia/llama-nemoretriever-colembed-1b-v1", trust_remote_code=True``
(non-commercial license) to embed the page images instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pagesight import Index

HERE = Path(__file__).parent
QUERY = "floating point numbers are not exactly equal"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("query", nargs="?", default=QUERY)
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = Index.create(args.store or Path(tmp) / "late", model="minilm-tokens")
        print(index.add([HERE / "R-FAQ.pdf"], show_progress=False).summary())
        exact = index.search(args.query, k=3, mode="dense", exhaustive=True)
        fused = index.search(args.query, k=3)
        index.close()
        for name, hits in (("MaxSim over every page", exact), ("MaxSim fused with BM25", fused)):
            print(f"\n{name}:")
            for h in hits:
                print(f"  {h.score:8.3f}  {Path(h.source).name} p.{h.page}")


if __name__ == "__main__":
    main()

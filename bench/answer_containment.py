"""Answer containment of the extractive generator on the eval set.

For each query of ``eval/queries.jsonl`` that has an ``answer`` (a short string copied from the
relevant page: a path, a command, a value; 32 of the 64 queries), ask the offline profile's
extractive generator (``Index.ask``, k=5, hybrid retrieval) and check whether the answer string
appears in the quoted text (case and whitespace ignored). Prints:

- ``read``: the share whose answer is on one of the pages the generator reads (its top 3): the
  ceiling for any quoting strategy over this retrieval;
- ``quoted``: the share whose answer is in the quotes;
- ``quoted / read``: how much of what was within reach the quotes kept.

The store is built once, untimed, from ``eval/corpus`` in a temporary folder unless ``--store``
names one built from it with the offline profile. Run:

    python bench/answer_containment.py [--store DIR] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, default=None, help="an offline-profile store of eval/corpus")
    parser.add_argument("--queries", type=Path, default=ROOT / "eval" / "queries.jsonl")
    parser.add_argument("-k", type=int, default=5, help="pages retrieved (default: 5, as pagesight ask)")
    parser.add_argument("--show-misses", action="store_true", help="print the quotes of each miss")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    records = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    asked = [r for r in records if r.get("answer")]
    with tempfile.TemporaryDirectory(prefix="pagesight-bench-") as tmp:
        store = args.store
        if store is None:
            store = Path(tmp) / "store"
            print("indexing eval/corpus (untimed) ...", flush=True)
            cmd = [sys.executable, "-m", "pagesight", "index", "eval/corpus", "--store", str(store)]
            subprocess.run([*cmd, "--profile", "offline", "-q"], check=True, cwd=ROOT)
        from pagesight import Index
        from pagesight.pipelines.answer import ExtractiveGenerator

        with Index.open(store, profile="offline") as index:
            generator = index.generator("extractive")
            pages_read = generator.pages if isinstance(generator, ExtractiveGenerator) else args.k
            read = quoted = 0
            for r in asked:
                result = index.ask(r["query"], generator, k=args.k)
                answer = norm(r["answer"])
                on_pages = any(answer in norm(h.text) for h in result.retrieved[:pages_read])
                in_quotes = answer in norm(result.text)
                read += on_pages
                quoted += in_quotes
                if args.show_misses and on_pages and not in_quotes:
                    print(f"\n{r['qid']} {r['query']!r}: expected {r['answer']!r}\n{result.text}")
    n = len(asked)
    print(f"\n{n} queries with an expected answer string ({args.queries.name}), k={args.k}")
    print(f"read:   {read}/{n} = {read / n:.1%}  (the answer is on a page the generator reads)")
    print(f"quoted: {quoted}/{n} = {quoted / n:.1%}  (the answer is in the quoted text)")
    print(f"quoted / read: {quoted / max(read, 1):.1%}")


if __name__ == "__main__":
    main()

"""BM25 saved with the store vs BM25 rebuilt per command: open time and search latency, one run.

Run from the repository root (CPU only)::

    python bench/bm25.py                          # 10k and 100k pages
    python bench/bm25.py --sizes 10000,100000,1000000 --words 80

What it does:

1. Splits the text of the real PDFs in ``eval/corpus/`` and ``examples/`` into sentences (PyMuPDF).
2. Fills ``N`` synthetic pages with sentences drawn at random (seeded) until a page holds about
   ``--words`` words: real vocabulary and term statistics, any size.
3. *Rebuilt* (what every ``search``/``ask`` command did before the index was saved): build
   :class:`pagesight.retrieval.hybrid.BM25Index` (bm25s) over all pages, then search it (its
   ranking walks every score in Python). The time to read the pages out of Chroma, which the
   rebuild also paid, is not counted, so the open-time ratio understates the gain.
4. *Persisted*: build :class:`pagesight.retrieval.bm25.SegmentedBM25` into a folder once (not
   part of any command), then time what a command pays: open (reads the manifest) plus the first
   query (memory-maps the segments), and the warm search latency (top-k by ``argpartition``).
   It also times one incremental add of a 20-page source and its delete, the work a write does
   instead of a rebuild.
5. Queries: the 64 questions of ``eval/queries.jsonl``, ``k=50`` (what hybrid search asks BM25 for).

Prints one table per size and the ratios rebuilt / persisted.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences() -> list[str]:
    """Sentences of at least four words from the PDFs shipped in ``eval/corpus`` and ``examples``."""
    import pymupdf

    found: list[str] = []
    for pdf in sorted([*ROOT.glob("eval/corpus/*.pdf"), *ROOT.glob("examples/*.pdf")]):
        with pymupdf.open(pdf) as doc:
            for page in doc:
                text = " ".join(page.get_text().split())
                found.extend(s for s in _SENTENCE.split(text) if len(s.split()) >= 4)
    return found


def fill(n: int, words: int, pool: list[str], seed: int, start: int = 0) -> list[tuple[str, str]]:
    """``n`` pages of about ``words`` words each, from sentences drawn with a seeded generator."""
    rng = random.Random(seed * 1_000_003 + start)
    lengths = [len(s.split()) for s in pool]
    pages = []
    for i in range(start, start + n):
        parts: list[str] = []
        count = 0
        while count < words:
            j = rng.randrange(len(pool))
            parts.append(pool[j])
            count += lengths[j]
        pages.append((f"{i:07d}-p1", " ".join(parts)))
    return pages


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def latency(search, queries: list[str], k: int) -> float:  # type: ignore[no-untyped-def]
    """Median seconds per query (each query run twice, the second run timed)."""
    times = []
    for q in queries:
        search(q, k)
        _, seconds = timed(search, q, k)
        times.append(seconds)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="comma-separated page counts (default: 10000,100000)"
    )
    parser.add_argument("--words", type=int, default=80, help="words per synthetic page (default: 80)")
    parser.add_argument("-k", type=int, default=50, help="hits per query (default: 50)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the page generator (default: 0)")
    parser.add_argument(
        "--skip-rebuilt", action="store_true", help="time only the persisted index (large sizes)"
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=200_000,
        help="sizes above this build the saved index by adds of this many pages, which bounds memory "
        "and exercises segment merging (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    from pagesight.retrieval.bm25 import SegmentedBM25
    from pagesight.retrieval.hybrid import BM25Index

    queries = [
        json.loads(line)["query"] for line in (ROOT / "eval/queries.jsonl").read_text().splitlines() if line
    ]
    pool = sentences()
    print(
        f"{len(pool):,} sentences from {ROOT / 'eval/corpus'} and {ROOT / 'examples'}; "
        f"{len(queries)} queries, k={args.k}"
    )
    rows = []
    for n in sizes:
        folder = Path(tempfile.mkdtemp(prefix="bm25-bench-")) / "bm25"
        try:
            if n <= args.chunk:
                pages = fill(n, args.words, pool, args.seed)
                _, build_s = timed(SegmentedBM25.build, folder, pages)
            else:
                pages = []
                start_s = time.perf_counter()
                growing = SegmentedBM25.create(folder)
                for start in range(0, n, args.chunk):
                    growing.apply(adds=fill(min(args.chunk, n - start), args.words, pool, args.seed, start))
                    print(f"  ... {start + args.chunk:,} pages, {growing.segment_count} segments", flush=True)
                build_s = time.perf_counter() - start_s
                del growing
                if not args.skip_rebuilt:  # the same pages, chunk by chunk
                    for start in range(0, n, args.chunk):
                        pages.extend(fill(min(args.chunk, n - start), args.words, pool, args.seed, start))
            disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

            def open_and_query(folder: Path = folder) -> SegmentedBM25:
                index = SegmentedBM25.open(folder)
                assert index is not None
                index.search(queries[0], args.k)
                return index

            opened, open_s = timed(open_and_query)
            persisted_q = latency(opened.search, queries, args.k)
            extra = fill(20, args.words, pool, args.seed + 1)
            extra = [(f"new-{i}", t) for i, (_, t) in enumerate(extra)]
            _, add_s = timed(opened.apply, adds=extra)
            _, delete_s = timed(opened.apply, deletes=[i for i, _ in extra])
            row = {
                "pages": n,
                "persisted build (once)": build_s,
                "persisted open+first query": open_s,
                "persisted search": persisted_q,
                "persisted add 20 pages": add_s,
                "persisted delete 20 pages": delete_s,
                "disk MB": disk / 1e6,
            }
            if not args.skip_rebuilt:
                rebuilt, rebuild_s = timed(BM25Index.build, [i for i, _ in pages], [t for _, t in pages])
                row["rebuilt open (build)"] = rebuild_s
                row["rebuilt search"] = latency(rebuilt.search, queries, args.k)
                same = sum(
                    [i for i, _ in rebuilt.search(q, 10)] == [i for i, _ in opened.search(q, 10)]
                    for q in queries
                )
                row["queries with the same top 10"] = same
                del rebuilt
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
        rows.append(row)
        print(f"\n{n:,} pages ({args.words} words each)")
        for key, value in row.items():
            if key == "pages":
                continue
            unit = "" if key in ("disk MB", "queries with the same top 10") else " s"
            shown = f"{value:.4f}" if isinstance(value, float) and value < 1 else f"{value:,.2f}"
            if key == "queries with the same top 10":
                shown = f"{value} of {len(queries)}"
            print(f"  {key:32s} {shown}{unit}")
        if "rebuilt open (build)" in row:
            print(
                "  open: rebuilt / persisted        "
                f"{row['rebuilt open (build)'] / row['persisted open+first query']:,.0f}x"
            )
            print(
                f"  search: rebuilt / persisted      {row['rebuilt search'] / row['persisted search']:,.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

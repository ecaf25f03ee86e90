"""Token-level candidates (centroid index) vs exhaustive MaxSim, on real MiniLM token vectors.

Issue 18: ">= 0.98 Recall@10 agreement with exhaustive at >= 20x speed on 20k passages; latency
sub-linear 20k -> 200k (synthetic extension from real token vectors)".

Data: the passages and cached token vectors of ``bench/two_stage.py`` (same corpus, same queries:
the 64 questions of ``eval/queries.jsonl`` plus first sentences of random passages). Each size runs
in one process, against a baseline measured in the same run:

- exhaustive MaxSim over every page (what ``MultiVectorStore.search(exhaustive=True)`` runs:
  ``TokenStore.iter_packed`` + ``maxsim``);
- centroid candidates then exact MaxSim (``pagesight.retrieval.store.centroids.search``, what
  ``MultiVectorStore.search`` runs with ``candidates_from="centroids"``), for several ``nprobe`` and
  ``candidates``.

Reported: p50/p95 latency, p50 speed-up over exhaustive, Recall@10 agreement with exhaustive (the
share of its top 10 ids returned, and tie-aware: the share of returned pages whose exact MaxSim
reaches exhaustive's 10th score, since pages that share token spans tie), index build time
(training + coding), bytes per page (tokens; index). Int8 and pooled tokens (``--variants``) are
compared with the float16 exhaustive ranking, so their figure includes the cost of the storage
itself. Sizes beyond the real corpus (``--sizes 20000,200000``) are made of new pages, each the
first half of one real passage's tokens and the second half of another's (so at 200,000 pages each
real passage's first half is in about 9 other pages, which tie with it on a query drawn from it:
the tie-aware figure is the one that measures the search there).

Run from the repository root (after ``bench/two_stage.py`` has cached the token vectors)::

    python bench/late_candidates.py --docs /tmp/docs/usr/share
    python bench/late_candidates.py --docs /tmp/docs/usr/share --variants int8,pool2
    python bench/late_candidates.py --docs /tmp/docs/usr/share --sizes 20000,200000 --dtype int8 \\
        --queries 36 --eval-queries 4 --nprobe 8 --candidates 64     # growth with the page count

The centroid searches of a size run before its exhaustive ones, so they find the index in the page
cache (a 200,000-page store is larger than this machine's memory: the exhaustive scans read the
tokens from disk, as they would in use).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import two_stage as ts  # noqa: E402


def exhaustive(query: np.ndarray, tokens: object, k: int) -> tuple[list[str], float]:
    """Exhaustive MaxSim's top ``k`` ids and its ``k``-th score."""
    from pagesight.retrieval.maxsim import maxsim

    ids: list[str] = []
    parts = []
    for part_ids, packed in tokens.iter_packed():  # type: ignore[attr-defined]
        ids.extend(part_ids)
        parts.append(maxsim(query, packed))
    scores = np.concatenate(parts)
    top = np.argsort(-scores, kind="stable")[:k]
    return [ids[int(i)] for i in top], float(scores[int(top[-1])])


class Extended(Sequence[np.ndarray]):
    """``size`` pages: the real ones, then new pages, each the first half of one random real page's
    tokens and the second half of another's. Made on demand (page ``i`` always the same), so 200,000
    pages never sit in memory at once."""

    def __init__(self, mats: Sequence[np.ndarray], size: int, seed: int = 0) -> None:
        self.mats, self.size, self.seed = mats, int(size), int(seed)

    def __len__(self) -> int:
        return self.size

    def page(self, i: int) -> np.ndarray:
        if i < len(self.mats):
            return self.mats[i]
        a, b = np.random.default_rng([self.seed, i]).integers(0, len(self.mats), 2)
        ma, mb = self.mats[int(a)], self.mats[int(b)]
        return np.concatenate([ma[: max(1, len(ma) // 2)], mb[len(mb) // 2 :]])

    def __getitem__(self, key):  # type: ignore[no-untyped-def, override]
        if isinstance(key, slice):
            return [self.page(i) for i in range(*key.indices(self.size))]
        return self.page(int(key))


def extend(mats: Sequence[np.ndarray], size: int, seed: int = 0) -> Sequence[np.ndarray]:
    return mats[:size] if size <= len(mats) else Extended(mats, size, seed)


def build(
    folder: Path, mats: Sequence[np.ndarray], dtype: str, n_centroids: int | None = None
) -> tuple[object, object, float, float]:
    from pagesight.retrieval.store.centroids import CentroidIndex
    from pagesight.retrieval.store.tokens import TokenStore

    tokens = TokenStore(folder / "tokens", dtype=dtype)  # type: ignore[arg-type]
    start = time.perf_counter()
    step = 2000
    for s in range(0, len(mats), step):
        tokens.put(
            [f"p{i}" for i in range(s, min(s + step, len(mats)))],
            [np.asarray(m, np.float32) for m in mats[s : s + step]],
        )
    put_s = time.perf_counter() - start
    index = CentroidIndex(folder / "tokens" / "centroids", n_centroids=n_centroids)
    start = time.perf_counter()
    with tokens.locked():
        index.sync(tokens)
    return tokens, index, put_s, time.perf_counter() - start


def run_size(
    label: str,
    mats: Sequence[np.ndarray],
    queries: Sequence[np.ndarray],
    reference: list[list[str]] | None,
    args: argparse.Namespace,
    dtype: str,
) -> list[list[str]]:
    from pagesight.retrieval.store import centroids as cx

    with tempfile.TemporaryDirectory(prefix="pagesight-late-", dir=args.tmp) as tmp:
        tokens, index, put_s, index_s = build(Path(tmp), mats, dtype, args.n_centroids)
        st = index.stats()  # type: ignore[attr-defined]
        tok_bpp = tokens.bytes_per_page()  # type: ignore[attr-defined]
        print(
            f"\n[{label}] {len(mats)} pages, {dtype}: tokens written in {put_s:.1f} s; centroid index "
            f"({st.n_centroids} centroids) built in {index_s:.1f} s; {tok_bpp:.0f} B/page tokens, "
            f"{st.file_bytes / len(mats):.0f} B/page index",
            flush=True,
        )
        runs = []  # the centroid searches first: the exhaustive scans push the lists out of the page cache
        for nprobe in [int(x) for x in args.nprobe.split(",")]:
            for cand in [int(x) for x in args.candidates.split(",")]:
                cold: list[float] = []
                for timed in (cold, []):  # a first pass from whatever the page cache holds, then warm
                    found = []
                    for q in queries:
                        t0 = time.perf_counter()
                        hits = cx.search(q, tokens, index, args.k, candidates=cand, nprobe=nprobe)  # type: ignore[arg-type]
                        timed.append(time.perf_counter() - t0)
                        found.append(hits)
                runs.append((f"centroids nprobe={nprobe} c={cand}", timed, found, cold))
        for q in queries[:2]:  # warm up
            exhaustive(q, tokens, args.k)
        times, exact_ids, kth = [], [], []
        for q in queries:
            t0 = time.perf_counter()
            top, last = exhaustive(q, tokens, args.k)
            times.append(time.perf_counter() - t0)
            exact_ids.append(top)
            kth.append(last)
        ref = reference if reference is not None else exact_ids
        p50_exact = ts.percentile_ms(times, 50)
        own = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact_ids, ref, strict=True)])
        print(
            f"{'search':<28}{'p50 ms':>9}{'p95 ms':>9}{'speed-up':>10}{'agreement':>11}{'tie-aware':>11}"
            f"{'cold p50':>10}"
        )
        print(
            f"{'exhaustive':<28}{p50_exact:>9.1f}{ts.percentile_ms(times, 95):>9.1f}{1.0:>9.1f}x{own:>11.3f}"
        )
        for name, times, found, cold in runs:
            agree = [len({h for h, _ in f} & set(r)) / args.k for f, r in zip(found, ref, strict=True)]
            # tie-aware: a returned page counts when its exact score reaches exhaustive's k-th score
            # (pages that share token spans tie, the synthetic ones above all); same storage only
            reached = [sum(sc >= t - 1e-4 for _, sc in f) / args.k for f, t in zip(found, kth, strict=True)]
            tie = "-" if reference is not None else f"{np.mean(reached):.3f}"
            p50 = ts.percentile_ms(times, 50)
            print(
                f"{name:<28}{p50:>9.1f}{ts.percentile_ms(times, 95):>9.1f}{p50_exact / p50:>9.1f}x"
                f"{np.mean(agree):>11.3f}{tie:>11}{ts.percentile_ms(cold, 50):>10.1f}",
                flush=True,
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of this process so far: {peak:.0f} MB", flush=True)
        tokens.close()  # type: ignore[attr-defined]
        index.close()  # type: ignore[attr-defined]
    return exact_ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, action="append", default=[], help="more folders of documents")
    parser.add_argument("--passages", type=int, default=20000, help="real passages (default 20000)")
    parser.add_argument("--sizes", default="20000", help="store sizes to run, e.g. 20000,200000")
    parser.add_argument("--queries", type=int, default=136, help="first-sentence queries besides eval/'s")
    parser.add_argument(
        "--eval-queries", type=int, default=64, help="questions from eval/queries.jsonl (default: all 64)"
    )
    parser.add_argument("--nprobe", default="4,8")
    parser.add_argument("--candidates", default="32,64,128")
    parser.add_argument(
        "--variants", default="", help="also run these storages at the first size: int8,pool2"
    )
    parser.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "float32", "int8"],
        help="token storage of every size (int8 lets 200,000 pages fit a 24 GB machine)",
    )
    parser.add_argument(
        "--n-centroids",
        type=int,
        default=None,
        help="centroids of every index (default: auto_centroids; 4096 keeps the index flat)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tmp", default=None, help="folder for the temporary stores")
    args = parser.parse_args(argv)

    from pagesight.evaluation import load_queries

    texts = ts.passages(ts.default_roots(args.docs), args.passages)
    tokens, offsets = ts.cached_tokens(texts, tag="two_stage")
    mats = ts.split_tokens(tokens, offsets)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(texts), size=min(args.queries, len(texts)), replace=False)
    query_texts = [q.query for q in load_queries(ts.ROOT / "eval" / "queries.jsonl")][: args.eval_queries]
    query_texts += [ts.first_sentence(texts[i]) for i in picks]
    queries = ts.minilm_tokens(ts.load_minilm(), query_texts)
    print(
        f"corpus: {len(texts)} real passages, {int(offsets[-1])} MiniLM tokens; {len(queries)} queries; "
        f"k={args.k}; CPU ({os.cpu_count()} cores)"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    first = None
    for size in sizes:
        ref = run_size(f"size {size}", extend(mats, size), queries, None, args, args.dtype)
        if first is None:
            first = ref
            for variant in [v for v in args.variants.split(",") if v]:
                if variant == "int8":
                    run_size("int8 tokens", extend(mats, size), queries, first, args, "int8")
                elif variant.startswith("pool"):
                    from pagesight.retrieval.pooling import pool_tokens

                    factor = int(variant[4:])
                    pooled = [
                        np.asarray(pool_tokens(np.asarray(m, np.float32), factor), np.float32)
                        for m in extend(mats, size)
                    ]
                    run_size(f"pool_factor={factor}", pooled, queries, first, args, "float16")
    print("\ntargets: >= 0.98 agreement at >= 20x at 20,000 pages; latency sub-linear in the page count")
    return 0


if __name__ == "__main__":
    sys.exit(main())

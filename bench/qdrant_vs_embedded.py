"""The Qdrant backend (local mode) against the embedded default (Chroma + token segments).

Issue 18: "Qdrant local mode vs the embedded default: write pages/s, query latency, agreement".

The same late-interaction pages go into both stores, in sources of 500 pages, timed:

- **embedded**: ``MultiVectorStore(folder)``: Chroma for the page records and summary vectors, the
  token matrices in append-only segments; search = Chroma's top ``candidates`` summaries, then exact
  MaxSim on their tokens;
- **qdrant**: ``open_multivector_store("qdrant+path://folder")``: one point per page with a summary
  vector and a ``MAX_SIM`` multivector; search = Qdrant's documented two-stage query (prefetch the
  ``candidates`` nearest summaries, rerank by MaxSim inside Qdrant).

Both are compared with exhaustive MaxSim over the embedded store's tokens (Recall@10 agreement).
Tokens: the real MiniLM token vectors ``bench/two_stage.py`` caches (``--docs``, as there) when the
cache exists, else random unit vectors (``--random``: then agreement says little).

Qdrant's local mode is its Python implementation (numpy), not the server's engine: a Qdrant server
or cluster is expected to be much faster; none can run here (no binary on PyPI or apt).

Run from the repository root::

    python bench/qdrant_vs_embedded.py --docs /tmp/docs/usr/share --pages 2000
    python bench/qdrant_vs_embedded.py --random --pages 1000     # no cache needed
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import two_stage as ts  # noqa: E402

PER_SOURCE = 500


def corpus(args: argparse.Namespace) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Passages, their token matrices and query token matrices."""
    if args.random:
        rng = np.random.default_rng(0)
        mats = []
        for _ in range(args.pages):
            m = rng.standard_normal((int(rng.integers(60, 200)), 384)).astype(np.float32)
            mats.append(m / np.linalg.norm(m, axis=1, keepdims=True))
        queries = [mats[int(i)][:12] for i in rng.choice(len(mats), args.queries, replace=False)]
        return [f"passage {i}" for i in range(args.pages)], mats, queries
    texts = ts.passages(ts.default_roots(args.docs), 20000)
    tokens, offsets = ts.cached_tokens(texts, tag="two_stage")
    mats = [np.asarray(m, np.float32) for m in ts.split_tokens(tokens, offsets)[: args.pages]]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(mats), size=min(args.queries, len(mats)), replace=False)
    queries = ts.minilm_tokens(ts.load_minilm(), [ts.first_sentence(texts[int(i)]) for i in picks])
    return texts[: args.pages], mats, queries


def fill(store: object, texts: Sequence[str], mats: Sequence[np.ndarray], info: object) -> float:
    """Write every page (sources of PER_SOURCE); return pages per second."""
    from pagesight.documents.page import Page

    start = time.perf_counter()
    for s in range(0, len(texts), PER_SOURCE):
        content_hash = hashlib.sha256(f"bench-source-{s}".encode()).hexdigest()
        pages = [
            Page(f"corpus-{s // PER_SOURCE:03d}", i + 1, text, None, 0, 0, content_hash)
            for i, text in enumerate(texts[s : s + PER_SOURCE])
        ]
        store.add_source(pages, list(mats[s : s + PER_SOURCE]), embedder=info)  # type: ignore[attr-defined]
    return len(texts) / (time.perf_counter() - start)


def timed(
    store: object, queries: Sequence[np.ndarray], info: object, **kw: object
) -> tuple[list[list[str]], float]:
    """Top-10 ids per query and the p50 latency in ms."""
    for q in queries[:2]:  # warm up
        store.search(q, k=10, embedder=info, **kw)  # type: ignore[attr-defined]
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        hits = store.search(q, k=10, embedder=info, **kw)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
        out.append([h.id for h in hits])
    return out, ts.percentile_ms(times, 50)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, action="append", default=[], help="more folders of documents")
    parser.add_argument("--random", action="store_true", help="random unit token vectors instead of MiniLM's")
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=100)
    args = parser.parse_args(argv)

    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store.open import open_multivector_store

    texts, mats, queries = corpus(args)
    info = EmbedderInfo("bench-tokens", "0" * 40, int(mats[0].shape[1]), "late-interaction")
    print(
        f"{len(texts)} pages, {sum(len(m) for m in mats)} tokens, {len(queries)} queries, k=10, "
        f"candidates={args.candidates}"
    )
    with tempfile.TemporaryDirectory(prefix="pagesight-qdrant-bench-") as tmp:
        embedded = MultiVectorStore(Path(tmp) / "embedded", storage="float16")
        qdrant = open_multivector_store(
            f"qdrant+path://{Path(tmp) / 'qdrant'}", image_dir=Path(tmp) / "images"
        )
        rates = {"embedded": fill(embedded, texts, mats, info), "qdrant": fill(qdrant, texts, mats, info)}
        exact, p50_exact = timed(embedded, queries, info, exhaustive=True)
        rows = [("embedded, exhaustive MaxSim", rates["embedded"], p50_exact, exact)]
        for name, store in (("embedded", embedded), ("qdrant", qdrant)):
            ids, p50 = timed(store, queries, info, candidates=args.candidates)
            rows.append((f"{name}, two-stage", rates[name], p50, ids))
        ids, p50 = timed(qdrant, queries, info, exhaustive=True)
        rows.append(("qdrant, MAX_SIM every point", rates["qdrant"], p50, ids))
        print(f"{'store, search':<30}{'write pages/s':>14}{'p50 ms':>9}{'vs embedded':>13}{'agreement':>11}")
        base = rows[1][2]
        for name, rate, p50, ids in rows:
            agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact, strict=True)])
            print(f"{name:<30}{rate:>14.1f}{p50:>9.1f}{p50 / base:>12.2f}x{agree:>11.3f}")
        embedded.close()
        qdrant.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

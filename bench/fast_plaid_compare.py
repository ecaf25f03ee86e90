"""pagesight's token centroid candidates against LightOn's fast-plaid, on the same token vectors and queries.

Issue 18: "side by side in the same run where it installs (separate venv is fine, since it pins
torch): fast-plaid on the same token vectors, same queries: latency and agreement".

fast-plaid 1.7.0.2110 pins torch 2.11, so it runs in its own virtual environment, with this
repository on ``PYTHONPATH`` (pagesight's index needs numpy, Pillow, httpx and filelock there).
Two steps:

1. In pagesight's environment, encode the queries (MiniLM; the passages' token vectors are the
   ones ``bench/two_stage.py`` caches in ``bench/.cache``) and write them with the cache's paths::

       python bench/fast_plaid_compare.py prepare --docs /tmp/docs/usr/share --out /tmp/fp-data

2. In fast-plaid's environment, in one process: exhaustive MaxSim (the baseline), pagesight's
   centroid index (``pagesight.retrieval.store.centroids``, defaults and a sweep) and fast-plaid
   (``FastPlaid.create`` with its defaults, 4-bit residuals; ``search`` one query at a time on the
   CPU, a sweep of ``n_ivf_probe`` / ``n_full_scores``)::

       python3 -m venv /tmp/fp-venv && /tmp/fp-venv/bin/pip install "fast-plaid==1.7.0.2110" \\
           pillow httpx filelock faiss-cpu
       PYTHONPATH=. /tmp/fp-venv/bin/python bench/fast_plaid_compare.py run --data /tmp/fp-data --pages 5000

fast-plaid's ``create`` trains ``16 sqrt(tokens)`` centroids (16,384 for the 3.3 M tokens of 20,000
passages): on a 2-core CPU that did not finish in 12 minutes, hence ``--pages 5000`` (0.8 M tokens,
8,192 centroids) for the side-by-side here.

Reported per engine: build time, bytes per page of its index, p50 latency, speed-up over
exhaustive MaxSim in the same process, Recall@10 agreement with exhaustive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def prepare(args: argparse.Namespace) -> int:
    import two_stage as ts

    from pagesight.evaluation import load_queries

    texts = ts.passages(ts.default_roots(args.docs), args.passages)
    ts.cached_tokens(texts, tag="two_stage")  # encodes once, if the cache lacks them
    key_files = sorted(ts.CACHE.glob("two_stage-*.tokens.npy"), key=lambda p: p.stat().st_mtime)
    tokens_path = key_files[-1]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(texts), size=min(args.queries, len(texts)), replace=False)
    query_texts = [q.query for q in load_queries(ts.ROOT / "eval" / "queries.jsonl")]
    query_texts += [ts.first_sentence(texts[i]) for i in picks]
    queries = ts.minilm_tokens(ts.load_minilm(), query_texts)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "queries.npz", *[np.asarray(q, np.float32) for q in queries])
    (args.out / "data.json").write_text(
        json.dumps(
            {
                "tokens": str(tokens_path),
                "offsets": str(tokens_path).replace(".tokens.npy", ".offsets.npy"),
                "queries": len(queries),
            }
        )
    )
    print(f"wrote {len(queries)} queries to {args.out}; tokens: {tokens_path}")
    return 0


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(args: argparse.Namespace) -> int:
    import late_candidates as lc
    import torch
    from fast_plaid import search as fp_search

    from pagesight.retrieval.store import centroids as cx

    torch.set_num_threads(os.cpu_count() or 1)
    data = json.loads((args.data / "data.json").read_text())
    tokens = np.load(data["tokens"], mmap_mode="r")
    offsets = np.load(data["offsets"])
    mats = [np.asarray(tokens[offsets[i] : offsets[i + 1]], np.float32) for i in range(len(offsets) - 1)]
    mats = mats[: args.pages]
    z = np.load(args.data / "queries.npz")
    queries = [z[f"arr_{i}"] for i in range(len(z.files))]
    k = 10
    print(
        f"{len(mats)} pages, {sum(len(m) for m in mats)} tokens, {len(queries)} queries, k={k}, CPU "
        f"({os.cpu_count()} cores), torch {torch.__version__}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagesight-fp-", dir=args.tmp) as tmp:
        store, index, _, index_s = lc.build(Path(tmp), mats, "float16")
        for q in queries[:3]:
            lc.exhaustive(q, store, k)
            cx.search(q, store, index, k)  # type: ignore[arg-type]
        ref, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            ref.append(lc.exhaustive(q, store, k))
            times.append(time.perf_counter() - t0)
        p50_exact = float(np.median(times)) * 1e3
        rows.append(("exhaustive MaxSim (pagesight)", 0.0, 0.0, p50_exact, 1.0))
        idx_bpp = index.stats().file_bytes / len(mats)  # type: ignore[attr-defined]
        for nprobe, cand in ((8, 64), (4, 128), (8, 128)):
            times, agree = [], []
            for q, r in zip(queries, ref, strict=True):
                t0 = time.perf_counter()
                hits = cx.search(q, store, index, k, nprobe=nprobe, candidates=cand)  # type: ignore[arg-type]
                times.append(time.perf_counter() - t0)
                agree.append(len({h for h, _ in hits} & set(r)) / k)
            name = f"pagesight nprobe={nprobe} c={cand}"
            rows.append((name, index_s, idx_bpp, float(np.median(times)) * 1e3, float(np.mean(agree))))
        store.close()  # type: ignore[attr-defined]
        index.close()  # type: ignore[attr-defined]

        fp_dir = Path(tmp) / "fast-plaid"
        engine = fp_search.FastPlaid(index=str(fp_dir), device="cpu")
        t0 = time.perf_counter()
        engine.create(documents_embeddings=[torch.from_numpy(m) for m in mats])
        fp_build = time.perf_counter() - t0
        fp_bpp = folder_bytes(fp_dir) / len(mats)
        tq = [torch.from_numpy(np.asarray(q, np.float32))[None] for q in queries]
        for probe, full in ((8, 4096), (8, 1024), (16, 4096), (32, 8192)):
            engine.search(
                queries_embeddings=tq[0], top_k=k, n_ivf_probe=probe, n_full_scores=full, show_progress=False
            )
            times, agree = [], []
            for q, r in zip(tq, ref, strict=True):
                t0 = time.perf_counter()
                found = engine.search(
                    queries_embeddings=q, top_k=k, n_ivf_probe=probe, n_full_scores=full, show_progress=False
                )[0]
                times.append(time.perf_counter() - t0)
                agree.append(len({f"p{i}" for i, _ in found} & set(r)) / k)
            name = f"fast-plaid probe={probe} full={full}"
            rows.append((name, fp_build, fp_bpp, float(np.median(times)) * 1e3, float(np.mean(agree))))
    print(f"\n{'engine':<36}{'build s':>9}{'index B/page':>14}{'p50 ms':>9}{'speed-up':>10}{'agreement':>11}")
    for name, build_s, bpp, p50, agree in rows:
        print(f"{name:<36}{build_s:>9.1f}{bpp:>14.0f}{p50:>9.1f}{p50_exact / p50:>9.1f}x{agree:>11.3f}")
    print(
        "(pagesight: the index sits beside the float16 token store, 126,513 B/page, read by the exact stage)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="pagesight's environment: encode the queries")
    p.add_argument("--docs", type=Path, action="append", default=[])
    p.add_argument("--passages", type=int, default=20000)
    p.add_argument("--queries", type=int, default=136, help="first-sentence queries besides eval/'s 64")
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="fast-plaid's environment: both engines and the baseline")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--pages", type=int, default=20000)
    r.add_argument("--tmp", default=None)
    args = parser.parse_args(argv)
    return prepare(args) if args.step == "prepare" else run(args)


if __name__ == "__main__":
    sys.exit(main())

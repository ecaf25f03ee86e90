"""Storage of late-interaction token vectors: bytes per page against retrieval quality.

Issue 3, item 3: "Storage: bytes per page for float32, float16, int8 and pooled x2/x3, each with its
nDCG@5 on your evaluation set."

What it does:

1. Loads the text of every page of ``eval/corpus/*.pdf`` (``load_pdf(render=False)``).
2. Embeds pages and the 64 questions of ``eval/queries.jsonl`` with
   ``ColEmbedEncoder("minilm-tokens")``: the bundled all-MiniLM-L6-v2 read token by token (pages
   longer than its 256-token window are split into overlapping windows, every token kept once).
   Token vectors are cached in ``bench/.cache/`` so reruns skip the encoding.
3. Builds one :class:`~pagesight.retrieval.multivector.MultiVectorStore` per storage setting
   (float32, float16, int8; float16 with tokens pooled x2 and x3; int8 pooled x2) and searches
   every query exhaustively (exact MaxSim on every page, so the numbers measure the stored tokens,
   not the candidate stage), then once more two-stage (mean-of-tokens candidates, 100 of them).
4. Prints bytes per page (token rows plus int8 scales, as the token store holds them), the ratio to
   float32, and nDCG@5 / Recall@5 / MRR@10 from :func:`pagesight.evaluation.evaluate`.

Run from the repository root (a few minutes on two CPU cores, most of it encoding the first time)::

    python bench/storage.py
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

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SETTINGS: list[tuple[str, str, int]] = [
    ("float32", "float32", 1),
    ("float16", "float16", 1),
    ("int8", "int8", 1),
    ("float16, pooled x2", "float16", 2),
    ("float16, pooled x3", "float16", 3),
    ("int8, pooled x2", "int8", 2),
]


def load_pages(corpus: Path) -> list[object]:
    from pagesight.documents import load_pdf

    pages = []
    for pdf in sorted(corpus.glob("*.pdf")):
        pages.extend(load_pdf(pdf, render=False))
    return pages


def encode_cached(encoder: object, texts: Sequence[str], *, kind: str) -> list[np.ndarray]:
    """Token matrices of ``texts`` (``kind`` "documents" or "queries"), cached by the texts' hash."""
    key = hashlib.sha256(("\x00".join(texts) + kind).encode()).hexdigest()[:16]
    path = CACHE / f"storage-{kind}-{key}.npz"
    if path.is_file():
        data = np.load(path)
        return np.split(data["tokens"], data["offsets"][1:-1])
    method = encoder.encode_documents if kind == "documents" else encoder.encode_queries  # type: ignore[attr-defined]
    mats = [np.asarray(m, np.float32) for m in method(list(texts))]
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in mats])])
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, tokens=np.concatenate(mats), offsets=offsets)
    tmp.replace(path)
    return mats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=ROOT / "eval" / "corpus")
    parser.add_argument("--queries", type=Path, default=ROOT / "eval" / "queries.jsonl")
    args = parser.parse_args(argv)

    from pagesight.evaluation import evaluate, load_queries, page_key
    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.retrieval.multivector import MultiVectorStore

    pages = load_pages(args.corpus)
    queries = load_queries(args.queries)
    encoder = ColEmbedEncoder("minilm-tokens")
    start = time.perf_counter()
    doc_tokens = encode_cached(encoder, [p.text for p in pages], kind="documents")  # type: ignore[attr-defined]
    query_tokens = encode_cached(encoder, [q.query for q in queries], kind="queries")
    n_tokens = sum(len(m) for m in doc_tokens)
    print(
        f"{len(pages)} pages of {args.corpus.name}/ ({n_tokens} MiniLM tokens, "
        f"{n_tokens / len(pages):.0f} per page), {len(queries)} queries; "
        f"encoded in {time.perf_counter() - start:.0f} s"
    )
    info = encoder.info
    by_source: dict[str, list[int]] = {}
    for i, p in enumerate(pages):
        by_source.setdefault(p.source, []).append(i)  # type: ignore[attr-defined]

    rows = []
    with tempfile.TemporaryDirectory(prefix="pagesight-storage-") as tmp:
        for name, storage, pool in SETTINGS:
            with MultiVectorStore(
                Path(tmp) / f"{storage}-{pool}", storage=storage, pool_factor=pool
            ) as store:  # type: ignore[arg-type]
                for idx in by_source.values():
                    store.add_source([pages[i] for i in idx], [doc_tokens[i] for i in idx], embedder=info)  # type: ignore[misc]
                runs: dict[str, dict[str, list[str]]] = {"exhaustive": {}, "two-stage": {}}
                for q, qt in zip(queries, query_tokens, strict=True):
                    for mode in runs:
                        hits = store.search(
                            qt, k=10, embedder=info, exhaustive=mode == "exhaustive", candidates=100
                        )
                        runs[mode][q.qid] = [page_key(h.source, h.page) for h in hits]
                metrics = {mode: evaluate(run, queries) for mode, run in runs.items()}
                rows.append((name, store.bytes_per_page(), metrics))

    base = rows[0][1]
    print(
        f"\n{'storage':<22}{'bytes/page':>12}{'vs f32':>8}{'nDCG@5':>9}{'Recall@5':>10}{'MRR@10':>8}"
        f"{'nDCG@5 2-stage':>16}"
    )
    for name, bpp, metrics in rows:
        ex = metrics["exhaustive"]
        print(
            f"{name:<22}{bpp:>12,.0f}{bpp / base:>8.2f}{ex['nDCG@5']:>9.3f}{ex['Recall@5']:>10.3f}"
            f"{ex['MRR@10']:>8.3f}{metrics['two-stage']['nDCG@5']:>16.3f}"
        )
    print(
        "\nbytes/page: token rows (+ one float32 scale per token for int8); "
        "Chroma's summary vector not counted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

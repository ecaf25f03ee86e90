"""Ingest throughput: rendering + text extraction alone vs the whole offline ingest.

Generates a PDF of ``--pages`` pages (text paragraphs, a drawn figure per page), then runs, each in
its own child process so peak RSS is per phase:

1. ``render``: ``load_pdf`` over every page (PNG render at ``--dpi`` + text), nothing else;
2. ``ingest``: the offline pipeline (render + text -> all-MiniLM-L6-v2 embeddings -> Chroma
   store), model load excluded and reported separately.

Prints pages/s for both, their ratio (ingest / render: the share of rendering speed the whole
pipeline keeps) and each phase's peak RSS. Run:

    python bench/ingest.py --pages 200
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "install",
    "configure",
    "package",
    "network",
    "kernel",
    "module",
    "driver",
    "printer",
    "storage",
    "backup",
    "security",
    "firewall",
    "user",
    "group",
    "permission",
    "service",
    "daemon",
    "log",
    "rotate",
    "schedule",
    "update",
    "upgrade",
    "mirror",
    "archive",
    "repository",
    "signature",
    "key",
    "certificate",
    "proxy",
    "cache",
    "database",
    "index",
    "query",
    "report",
]


def make_pdf(path: Path, pages: int) -> None:
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page(width=595, height=842)
        words = [WORDS[(n * 7 + i * 13) % len(WORDS)] for i in range(380)]
        body = "\n\n".join(" ".join(words[i : i + 38]).capitalize() + "." for i in range(0, 380, 38))
        page.insert_textbox(pymupdf.Rect(50, 60, 545, 700), f"Section {n + 1}\n\n{body}", fontsize=9)
        page.draw_rect(pymupdf.Rect(60, 720, 300, 800), color=(0.2, 0.3, 0.8), fill=(0.8, 0.85, 1.0))
    doc.save(str(path))
    doc.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_render(pdf: Path, dpi: int, renderer: str | None) -> dict[str, float]:
    from pagesight.documents import load_pdf

    with tempfile.TemporaryDirectory() as images:
        t0 = time.perf_counter()
        n = sum(1 for _ in load_pdf(pdf, dpi=dpi, renderer=renderer, image_dir=images))
        dt = time.perf_counter() - t0
    return {"pages": n, "seconds": dt, "pages_per_s": n / dt, "peak_rss_mb": peak_rss_mb()}


def phase_ingest(pdf: Path, dpi: int, renderer: str | None) -> dict[str, float]:
    from pagesight.models.matryoshka import MatryoshkaEncoder
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.store import PageStore

    encoder = MatryoshkaEncoder("all-minilm-l6-v2")
    t0 = time.perf_counter()
    encoder.load()
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        store = PageStore(Path(folder) / "store")
        t0 = time.perf_counter()
        opts = {"dpi": dpi} | ({"renderer": renderer} if renderer else {})
        report = ingest([str(pdf)], store, encoder, show_progress=False, **opts)
        dt = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(report.summary())
        n = report.pages_indexed
        stored = store.count()
    return {
        "pages": n,
        "stored": stored,
        "seconds": dt,
        "pages_per_s": n / dt,
        "model_load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(phase: str, pdf: Path, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--phase", phase, "--pdf", str(pdf), "--dpi", str(args.dpi)]
    if args.renderer:
        cmd += ["--renderer", args.renderer]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--dpi", type=int, default=96)
    ap.add_argument("--renderer", choices=["pymupdf", "pdfium"], default=None)
    ap.add_argument("--phase", choices=["render", "ingest"], help=argparse.SUPPRESS)
    ap.add_argument("--pdf", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        fn = phase_render if args.phase == "render" else phase_ingest
        print(json.dumps(fn(args.pdf, args.dpi, args.renderer)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "bench.pdf"
        make_pdf(pdf, args.pages)
        render = run_child("render", pdf, args)
        full = run_child("ingest", pdf, args)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"PDF: {args.pages} generated pages, dpi {args.dpi}, renderer {args.renderer or 'default'}")
    print(f"render + text : {render['pages_per_s']:8.1f} pages/s   peak RSS {render['peak_rss_mb']:7.0f} MB")
    print(
        f"offline ingest: {full['pages_per_s']:8.1f} pages/s   peak RSS {full['peak_rss_mb']:7.0f} MB"
        f"   (model load {full['model_load_s']:.1f} s, excluded; {full['stored']} pages stored)"
    )
    print(f"ratio ingest/render: {full['pages_per_s'] / render['pages_per_s']:.3f}")


if __name__ == "__main__":
    main()

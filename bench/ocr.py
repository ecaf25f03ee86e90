"""OCR: retrieval quality on scanned copies of the eval PDFs, and OCR speed per engine.

What it does, in one run:

1. Rasterizes every PDF of ``eval/corpus`` (189 pages) into an image-only PDF at ``--scan-dpi``
   (each page rendered, then put back as the page's only content: a "scan", same file names).
2. ``speed`` phase, one child process per engine (so peak RSS is per engine): loads the scans with
   ``ocr="always"`` and no cache and reports OCR pages/s and the peak RSS of that process, and
   for Tesseract the peak RSS of one ``tesseract`` run (one runs per worker at a time, so the
   whole peak is about process + workers x run). Tesseract reads every page
   (its results seed the OCR cache of step 3); RapidOCR, about ten times slower, reads the first
   ``--rapidocr-pages`` pages.
3. Indexes the original PDFs (text layer only: ``ocr="never"``, so the baseline has no OCR text
   in it) and the scans (OCR, Tesseract, cache from step 2) with the
   offline profile (all-MiniLM-L6-v2 + BM25) and scores both on ``eval/queries.jsonl`` with
   :func:`pagesight.evaluation.evaluate` (dense, bm25 and hybrid), printing the ratio
   scans / text layer (target: at least 0.9 on nDCG@5).

Run from the repository root (CPU only; about 5 minutes on 2 cores)::

    python bench/ocr.py
    python bench/ocr.py --scan-dpi 200 --ocr-dpi 200 --rapidocr-pages 0
    python bench/ocr.py --photographed --rapidocr-pages 0   # skewed, noisy scans
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("dense", "bm25", "hybrid")


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_TESSERACT_RSS = """
import resource, subprocess, sys
cmd = ["tesseract", sys.argv[1], "stdout", "--dpi", sys.argv[2], "tsv"]
subprocess.run(cmd, capture_output=True, check=True, env={"OMP_THREAD_LIMIT": "1"})
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def tesseract_rss_mb(scans: Path, ocr_dpi: int) -> float:
    """Peak resident memory of one ``tesseract`` run on the first scanned page, in MB.

    ``RUSAGE_CHILDREN`` of the OCR process itself would report that process's own size (a child
    counts the memory it was forked with), so a bare Python child runs Tesseract and reports it.
    """
    import pymupdf

    first = sorted(scans.glob("*.pdf"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "page.png"
        pymupdf.open(first)[0].get_pixmap(dpi=ocr_dpi, colorspace=pymupdf.csGRAY).save(png)
        cmd = [sys.executable, "-S", "-c", _TESSERACT_RSS, str(png), str(ocr_dpi)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def photograph(png: bytes, page_number: int) -> bytes:
    """The page as a phone or a skewed feeder sees it: turned 1-3 degrees, grey paper, 1 % noise."""
    import io
    import random

    from PIL import Image

    rng = random.Random(page_number)
    image = Image.open(io.BytesIO(png)).convert("L")
    angle = rng.choice((-1, 1)) * rng.uniform(1.0, 3.0)
    image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=235)
    px = image.load()
    assert px is not None
    w, h = image.size
    for _ in range(int(0.01 * w * h)):
        px[rng.randrange(w), rng.randrange(h)] = rng.choice((0, 255))
    image = image.point(lambda v: min(255, int(v * 0.92) + 10))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def rasterize(corpus: Path, out: Path, dpi: int, photographed: bool = False) -> int:
    """Write an image-only copy of each PDF of ``corpus`` into ``out``; return the page count."""
    import pymupdf

    out.mkdir(parents=True, exist_ok=True)
    pages = 0
    for pdf in sorted(corpus.glob("*.pdf")):
        src = pymupdf.open(pdf)
        dst = pymupdf.open()
        for page in src:
            pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
            new = dst.new_page(width=page.rect.width, height=page.rect.height)
            png = pix.tobytes("png")
            new.insert_image(new.rect, stream=photograph(png, pages) if photographed else png)
            pages += 1
        dst.save(out / pdf.name, deflate=True)
    return pages


def phase_speed(scans: Path, engine: str, limit: int, ocr_dpi: int, cache: str | None) -> dict[str, float]:
    """OCR ``limit`` pages of the scans (0: all) with ``engine``; pages/s and peak RSS of this process."""
    from pagesight.documents import load_pdf

    done = 0
    seconds = 0.0
    with tempfile.TemporaryDirectory() as images:
        for pdf in sorted(scans.glob("*.pdf")):
            if limit and done >= limit:
                break
            start = time.perf_counter()
            for _page in load_pdf(
                pdf, image_dir=images, ocr="always", ocr_engine=engine, ocr_dpi=ocr_dpi, ocr_cache=cache
            ):
                done += 1
                if limit and done >= limit:
                    break
            seconds += time.perf_counter() - start
    return {
        "pages": done,
        "seconds": seconds,
        "pages_per_s": done / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_child(args: argparse.Namespace, scans: Path, engine: str, limit: int, cache: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--phase", "speed", "--scans", str(scans), "--engine", engine]
    cmd += ["--limit", str(limit), "--ocr-dpi", str(args.ocr_dpi)]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def score(
    folder: Path, store_dir: Path, encoder: object, ocr_dpi: int, ocr: str = "auto"
) -> tuple[dict, float, int]:
    """Index ``folder`` into a fresh store; return {mode: metrics}, seconds and pages."""
    from pagesight.evaluation import evaluate, load_queries, page_key
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.search import PageSearcher
    from pagesight.retrieval.store import PageStore

    store = PageStore(store_dir)
    start = time.perf_counter()
    report = ingest([folder], store, encoder, show_progress=False, ocr_dpi=ocr_dpi, ocr=ocr)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    assert report.ok, report.summary()
    queries = load_queries(ROOT / "eval" / "queries.jsonl")
    table = {}
    for mode in MODES:
        searcher = PageSearcher(store, encoder, mode=mode)  # type: ignore[arg-type]
        run = {q.qid: [page_key(h.source, h.page) for h in searcher.search(q.query, k=10)] for q in queries}
        table[mode] = evaluate(run, queries)
    return table, seconds, report.pages_indexed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--phase", choices=["all", "speed", "tesseract-rss"], default="all")
    p.add_argument("--scans", type=Path, default=None)
    p.add_argument("--engine", default="tesseract")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--cache", default=None)
    p.add_argument("--scan-dpi", type=int, default=150, help="resolution of the scans (default 150)")
    p.add_argument("--ocr-dpi", type=int, default=150, help="resolution pages are OCR'd at (default 150)")
    p.add_argument("--rapidocr-pages", type=int, default=8, help="pages RapidOCR reads (0: skip it)")
    p.add_argument(
        "--photographed", action="store_true", help="turn the scans 1-3 degrees and add 1 %% noise"
    )
    args = p.parse_args()
    if args.phase == "tesseract-rss":  # python bench/ocr.py --phase tesseract-rss (rasterizes 1 file)
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus"
            corpus.mkdir()
            first = sorted((ROOT / "eval" / "corpus").glob("*.pdf"))[0]
            (corpus / first.name).write_bytes(first.read_bytes())
            rasterize(corpus, Path(tmp) / "scans", args.scan_dpi)
            print(
                f"tesseract peak RSS, one page at {args.ocr_dpi} dpi: "
                f"{tesseract_rss_mb(Path(tmp) / 'scans', args.ocr_dpi):.0f} MB"
            )
        return
    if args.phase == "speed":
        print(json.dumps(phase_speed(args.scans, args.engine, args.limit, args.ocr_dpi, args.cache)))
        return

    from pagesight.documents.ocr import available_engines
    from pagesight.models.matryoshka import MatryoshkaEncoder

    machine = platform.processor() or platform.machine()
    print(f"# {machine}, {os.cpu_count()} cores, Python {platform.python_version()}")
    engines = available_engines()
    print(f"# OCR engines installed: {', '.join(engines) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scans = work / "scans"
        t = time.perf_counter()
        n = rasterize(ROOT / "eval" / "corpus", scans, args.scan_dpi, args.photographed)
        kind = "photographed " if args.photographed else ""
        print(
            f"rasterized {n} pages into {kind}scans at {args.scan_dpi} dpi in {time.perf_counter() - t:.1f} s"
        )

        cache = work / "scans-store" / "ocr-cache"
        print(f"\n{'engine':<10} {'pages':>6} {'pages/s':>8} {'s/page':>7} {'peak RSS MB':>12}")
        for engine in engines:
            limit = 0 if engine == "tesseract" else args.rapidocr_pages
            if engine != "tesseract" and limit == 0:
                continue
            r = run_child(args, scans, engine, limit, cache if engine == "tesseract" else None)
            print(
                f"{engine:<10} {r['pages']:>6} {r['pages_per_s']:>8.2f} {1 / r['pages_per_s']:>7.2f} "
                f"{r['peak_rss_mb']:>12.0f}"
            )
            if engine == "tesseract":  # its own processes, one per worker at a time
                workers = os.cpu_count() or 1
                print(
                    f"{'':<10} + tesseract runs: {tesseract_rss_mb(scans, args.ocr_dpi):.0f} MB peak "
                    f"each, up to {workers} at once"
                )

        encoder = MatryoshkaEncoder("all-minilm-l6-v2")
        encoder.load()
        text, t_text, _ = score(
            ROOT / "eval" / "corpus", work / "text-store", encoder, args.ocr_dpi, ocr="never"
        )
        ocr, t_ocr, _ = score(scans, work / "scans-store", encoder, args.ocr_dpi)
        blind, _, _ = score(scans, work / "blind-store", encoder, args.ocr_dpi, ocr="never")
        print(f"\nindex: text layer {t_text:.1f} s, scans {t_ocr:.1f} s (OCR results from the cache above)")
        head = f"{'mode':<7} {'metric':<10} {'text layer':>10} {'scans+OCR':>10} {'ratio':>6}"
        print(f"\n{head} {'scans, no OCR':>14}")
        for mode in MODES:
            for metric in ("nDCG@5", "Recall@10", "MRR@10"):
                a, b, c = (t[mode][metric] for t in (text, ocr, blind))  # type: ignore[literal-required]
                ratio = b / a if a else float("nan")
                print(f"{mode:<7} {metric:<10} {a:>10.3f} {b:>10.3f} {ratio:>6.2f} {c:>14.3f}")


if __name__ == "__main__":
    main()

"""Ingest on Ray Data against single-process ingest, one run; then a projection for N GPU machines.

Run from the repository root (needs ``pip install "pagesight[ray]"``, CPU only)::

    python bench/ray_ingest.py                         # 60 pages in 6 sources; 1, 2 and 4 Ray CPUs
    python bench/ray_ingest.py --pages 120 --chunk 10 --cpus 1,2,4,8

What it does:

1. Cuts the PDFs of ``examples/`` into sources of ``--chunk`` pages (PyMuPDF ``insert_pdf``: each
   chunk is a real PDF with its own bytes), ``--pages`` pages in all.
2. *Single process*: :func:`pagesight.pipelines.ingest.ingest` into a fresh embedded store with the
   offline embedder (all-MiniLM-L6-v2 from a PyPI package), ``ocr="never"``, model loaded first.
3. *Ray*: the same call with ``executor=RayExecutor(...)`` on a local Ray instance started with
   ``num_cpus=N`` for each N of ``--cpus``: load tasks take one CPU each, one embedding actor
   reserves one CPU (less when N is 1, so loading is not starved). The time counts from the call
   to its return, so it includes each run's actor start and model load; the Ray instance's own
   start is timed apart and not counted.
4. *Stages*: the per-page costs of loading and rendering, embedding and writing, measured one
   after the other in this process (no overlap), for the projection.

Prints pages/s of each run and its ratio to single process, the stage costs, and a projection of
pages/s for N GPU machines. The projection is arithmetic on the measured stage costs and a GPU
embedding cost per page you give (``--gpu-ms-per-page``; default 683 ms, the published figure for
ColEmbed-3B on one A100): throughput = min(load CPUs x N / load cost, GPUs x N / embed cost,
1 / write cost), the write being serial (the driver commits every source). It is not a measurement.

On a 2-core machine shared with other work the Ray runs cannot beat the single process: Ray's
own processes (raylet, GCS, object store, one worker per task) take CPU from the same two cores;
the point of the CPU runs is to check that the pipeline scales from 1 to 2 CPUs and costs little
per page, and to measure what the projection needs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_sources(folder: Path, pages: int, chunk: int) -> list[Path]:
    """``pages`` pages of ``examples/*.pdf`` in PDFs of ``chunk`` pages each."""
    import pymupdf

    out: list[Path] = []
    left = pages
    for pdf in sorted(ROOT.glob("examples/*.pdf")):
        with pymupdf.open(pdf) as doc:
            for start in range(0, doc.page_count, chunk):
                if left <= 0:
                    return out
                n = min(chunk, left, doc.page_count - start)
                part = pymupdf.open()
                part.insert_pdf(doc, from_page=start, to_page=start + n - 1)
                path = folder / f"{pdf.stem}-{start + 1:04d}.pdf"
                part.save(str(path))
                part.close()
                out.append(path)
                left -= n
    return out


def stage_costs(sources: list[Path], encoder: object, tmp: Path) -> dict[str, float]:
    """Seconds per page of load+render, embed and write, one stage after the other."""
    from pagesight.documents import load_source
    from pagesight.retrieval.store import PageStore

    t = time.perf_counter()
    loaded = []
    for i, src in enumerate(sources):
        loaded.append(list(load_source(str(src), image_dir=tmp / f"stage-img-{i}", ocr="never")))
    n = sum(len(p) for p in loaded)
    load = (time.perf_counter() - t) / n
    t = time.perf_counter()
    vectors = [encoder.encode_pages(pages) for pages in loaded]  # type: ignore[attr-defined]
    embed = (time.perf_counter() - t) / n
    store = PageStore(tmp / "stage-store")
    t = time.perf_counter()
    for pages, vecs in zip(loaded, vectors, strict=True):
        store.add_source(pages, vecs, embedder=encoder.info)  # type: ignore[attr-defined]
    write = (time.perf_counter() - t) / n
    store.close()
    return {"load": load, "embed": embed, "write": write, "pages": n}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=10, help="pages per source")
    parser.add_argument("--cpus", default="1,2,4", help="Ray CPUs of each run, comma-separated")
    parser.add_argument("--gpu-ms-per-page", type=float, default=683.0, help="projection: GPU embed cost")
    parser.add_argument("--cpus-per-machine", type=int, default=16, help="projection: load CPUs per machine")
    parser.add_argument("--gpus-per-machine", type=int, default=1, help="projection: GPUs per machine")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

    import ray

    from pagesight.models.matryoshka import MatryoshkaEncoder
    from pagesight.pipelines.distributed import RayExecutor
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.store import PageStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        sources = make_sources(tmp, args.pages, args.chunk)
        pages = args.pages
        print(f"{pages} pages in {len(sources)} sources; cores on this machine: {os.cpu_count()}")
        encoder = MatryoshkaEncoder("all-minilm-l6-v2").load()

        t = time.perf_counter()
        base = ingest(sources, PageStore(tmp / "single"), encoder, ocr="never", show_progress=False)
        single = time.perf_counter() - t
        assert base.ok and base.pages_indexed == pages, base.summary()
        rows = [("single process", single, None)]

        for n in [int(c) for c in args.cpus.split(",")]:
            t = time.perf_counter()
            ray.init(
                num_cpus=n, include_dashboard=False, log_to_driver=False, object_store_memory=300 * 1024**2
            )
            started = time.perf_counter() - t
            try:
                t = time.perf_counter()
                report = ingest(
                    sources,
                    PageStore(tmp / f"ray-{n}"),
                    MatryoshkaEncoder("all-minilm-l6-v2"),
                    executor=RayExecutor(),
                    ocr="never",
                    show_progress=False,
                )
                took = time.perf_counter() - t
            finally:
                ray.shutdown()
            assert report.ok and report.pages_indexed == pages, report.summary()
            rows.append((f"Ray, {n} CPU(s)", took, started))

        print(f"\n{'run':<18} {'seconds':>8} {'pages/s':>8} {'vs single':>10}")
        for name, took, started in rows:
            extra = f"   (+{started:.1f} s Ray start, not counted)" if started is not None else ""
            print(f"{name:<18} {took:8.1f} {pages / took:8.2f} {single / took:9.2f}x{extra}")

        costs = [stage_costs(sources, encoder, tmp / f"stages-{i}") for i in range(2)]
        stage = {k: statistics.median(c[k] for c in costs) for k in ("load", "embed", "write")}
        print(
            "\nper-page stage costs on this machine (median of 2, ms): "
            + ", ".join(f"{k} {v * 1000:.1f}" for k, v in stage.items())
        )

        gpu = args.gpu_ms_per_page / 1000
        print(
            f"\nPROJECTION (not measured): N machines with {args.cpus_per_machine} load CPUs and "
            f"{args.gpus_per_machine} GPU(s) each, GPU embed {args.gpu_ms_per_page:.0f} ms/page, "
            f"load {stage['load'] * 1000:.1f} ms/page/CPU and write {stage['write'] * 1000:.2f} ms/page "
            "(serial, on the driver) as measured here"
        )
        print(
            f"{'N':>4} {'load cap':>10} {'embed cap':>10} {'write cap':>10} {'pages/s':>9} {'2M pages':>10}"
        )
        for machines in (1, 2, 4, 8, 16, 32, 64):
            caps = (
                machines * args.cpus_per_machine / stage["load"],
                machines * args.gpus_per_machine / gpu,
                1 / stage["write"],
            )
            rate = min(caps)
            hours = 2_000_000 / rate / 3600
            print(f"{machines:>4} {caps[0]:10.0f} {caps[1]:10.1f} {caps[2]:10.0f} {rate:9.1f} {hours:8.1f} h")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

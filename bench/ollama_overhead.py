"""Client-side cost of OllamaGenerator (prompt, image scaling/encoding, HTTP) against the loopback double.

Run from the repository root: ``python bench/ollama_overhead.py``. Five A4 pages are rendered at
150 dpi; the model time is excluded (the double answers at once).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pymupdf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ollama_double import ChatModel, OllamaDouble  # noqa: E402

from pagesight.models.generate.ollama import OllamaGenerator  # noqa: E402
from pagesight.pipelines._images import bounded_image, png_bytes  # noqa: E402
from pagesight.retrieval.store import Hit  # noqa: E402

TEXT = "Compost improves soil structure. Turn the heap every two weeks to keep it aerobic and warm. " * 40


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    doc = pymupdf.open()
    hits = []
    for i in range(5):
        page = doc.new_page(width=595, height=842)
        page.insert_textbox(pymupdf.Rect(50, 50, 545, 792), TEXT, fontsize=10)
        pix = page.get_pixmap(dpi=150)
        path = tmp / f"page{i}.png"
        pix.save(str(path))
        score = 1.0 - i / 10
        hits.append(Hit(str(i), f"/d/doc{i}.pdf", 1, TEXT, path, pix.width, pix.height, "0" * 64, score))
    start = time.perf_counter()
    data = png_bytes(bounded_image(hits[0].image or ""))
    print(
        f"one {hits[0].width}x{hits[0].height} page scaled and PNG-encoded: "
        f"{(time.perf_counter() - start) * 1000:.0f} ms, {len(data)} bytes"
    )
    models = {"llama3.2": ChatModel(), "qwen2.5vl:3b": ChatModel(vision=True)}
    with OllamaDouble({}, chat_models=models) as server:
        for name in models:
            gen = OllamaGenerator(name, host=server.url).check()
            times = []
            for _ in range(5):
                start = time.perf_counter()
                gen.generate("How often should the heap be turned?", hits)
                times.append(time.perf_counter() - start)
            sent = sum(
                len(m.get("content", "")) + sum(len(x) for x in m.get("images") or [])
                for m in server.chats[-1]["messages"]
            )
            print(
                f"{name}: median {statistics.median(times) * 1000:.0f} ms per request, {sent} bytes sent, "
                f"images {server.chat_images[-1]}"
            )


if __name__ == "__main__":
    main()

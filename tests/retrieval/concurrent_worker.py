"""One process of the two-process concurrency test: ingest PDFs and search a Chroma server at once.

Run as ``python concurrent_worker.py <spec.json>``. The spec names the server ``url``, the shared
``image_dir``, the ``collection``, the ``pdfs`` to ingest (one at a time), the ``queries`` to search
and the ``out`` file. A search thread runs hybrid searches in a loop until ingest ends (and at
least ``min_searches`` times); the worker then writes a JSON report: sources indexed, searches
served (in all and while ingest ran), and every problem seen (exceptions, hits without an image
file or without text).
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from pathlib import Path
from typing import Any


def main(spec_path: str) -> int:
    """Run the worker described by the JSON file ``spec_path``; 0 when it could write its report."""
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    from pagesight.models.matryoshka import MatryoshkaEncoder
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.search import PageSearcher
    from pagesight.retrieval.store import PageStore

    encoder = MatryoshkaEncoder("all-minilm-l6-v2")
    encoder.load()
    store = PageStore(url=spec["url"], image_dir=spec["image_dir"], collection=spec["collection"])
    searcher = PageSearcher(store, encoder, mode="hybrid")
    problems: list[str] = []
    searches = 0
    during_ingest = 0
    hits_seen = 0
    done = threading.Event()
    lock = threading.Lock()

    def search_loop() -> None:
        nonlocal searches, hits_seen, during_ingest
        i = 0
        while not done.is_set() or searches < spec["min_searches"]:
            query = spec["queries"][i % len(spec["queries"])]
            i += 1
            try:
                hits = searcher.search(query, k=5)
            except Exception:
                with lock:
                    problems.append(f"search {query!r} raised:\n{traceback.format_exc()}")
                continue
            bad = [
                f"{h.source} p{h.page}: image={h.image} text={h.text!r}"
                for h in hits
                if h.image is None or not h.image.is_file() or not h.text.strip()
            ]
            with lock:
                searches += 1
                during_ingest += not done.is_set()
                hits_seen += len(hits)
                problems.extend(f"incomplete hit for {query!r}: {b}" for b in bad)

    thread = threading.Thread(target=search_loop, name="searcher")
    thread.start()
    indexed: list[str] = []
    try:
        for pdf in spec["pdfs"]:
            report = ingest([pdf], store, encoder, show_progress=False)
            searcher.refresh()
            for result in report.results:
                if result.status == "indexed":
                    indexed.append(result.source)
                else:
                    problems.append(f"ingest of {result.source}: {result.status} {result.error}")
    except Exception:
        problems.append(f"ingest raised:\n{traceback.format_exc()}")
    finally:
        done.set()
        thread.join()
        store.close()
    Path(spec["out"]).write_text(
        json.dumps(
            {
                "indexed": indexed,
                "searches": searches,
                "during_ingest": during_ingest,
                "hits": hits_seen,
                "problems": problems,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

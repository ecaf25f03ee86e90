"""The web app over the example PDFs: index them, then ask in the browser.

    python examples/web_app.py [--store DIR] [--generator ollama:gemma3:4b] [--port 7860]

Opens http://127.0.0.1:7860 (this machine only). ``--check`` starts the app on a free port, fetches
its page once and exits (what the test runs).
"""

from __future__ import annotations

import argparse
import tempfile
import urllib.request
from pathlib import Path

from pagesight import Index
from pagesight.ui import build_app, launch

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, default=None, help="store folder (default: a temporary one)")
    ap.add_argument("--generator", default="extractive", help="extractive | ollama:<model> | hf:<model>")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--check", action="store_true", help="start, fetch the page once, stop")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        location = args.store or Path(tmp) / "store"
        with Index.create(location, profile="offline") as index:
            print(index.add([HERE], show_progress=False).summary())
        demo = build_app(location, generator=args.generator)
        if not args.check:
            launch(demo, host="127.0.0.1", port=args.port)  # blocks until Ctrl-C
            return
        url = launch(demo, host="127.0.0.1", port=0, block=False)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                print(f"{url} answered {response.status}")
        finally:
            demo.close()


if __name__ == "__main__":
    main()

"""Wall time of one ``pagesight search`` and one ``pagesight ask`` (extractive) on the offline
profile, against ``python -c "import torch"``.

Each ``pagesight search`` is a fresh process, as a user runs it: interpreter start, imports, opening
the store, embedding the query, BM25 and printing. The baseline is the wall time of
``python -c "import torch"`` measured in the same run on the same machine (the floor of any query
that goes through torch). Both are medians of ``--runs`` runs, interleaved. The torch query path
(``PAGESIGHT_ONNX_QUERIES=0``, what every search paid before the int8 ONNX query path) is timed too,
and so is ``ask`` both ways (the extractive answer scores its passages on the ONNX path too).

The store is built once, untimed, from ``examples/R-FAQ.pdf`` in a temporary folder, unless
``--store`` names one built with the offline profile. Run:

    python bench/cli_latency.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "how do I cite R in a publication"


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default: 5)")
    parser.add_argument("--store", type=Path, default=None, help="an offline-profile store to search")
    parser.add_argument("--query", default=QUERY)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("PAGESIGHT_ONNX_QUERIES", None)
    cli = [sys.executable, "-m", "pagesight"]
    with tempfile.TemporaryDirectory(prefix="pagesight-bench-") as tmp:
        store = args.store or Path(tmp) / "store"
        if args.store is None:
            print("building the store from examples/R-FAQ.pdf (untimed) ...", flush=True)
            wall(
                [*cli, "index", "examples/R-FAQ.pdf", "--store", str(store), "--profile", "offline", "-q"],
                env,
            )
        search = [*cli, "search", args.query, "--store", str(store), "-k", "5"]
        ask = [*cli, "ask", args.query, "--store", str(store), "--profile", "offline"]  # extractive
        torch_env = {**env, "PAGESIGHT_ONNX_QUERIES": "0"}
        times: dict[str, list[float]] = {
            "import torch": [],
            "search": [],
            "search (torch query path)": [],
            "ask": [],
            "ask (torch path)": [],
        }
        wall(search, env)  # warm the page cache once
        for _ in range(args.runs):
            times["import torch"].append(wall([sys.executable, "-c", "import torch"], env))
            times["search"].append(wall(search, env))
            times["search (torch query path)"].append(wall(search, torch_env))
            times["ask"].append(wall(ask, env))
            times["ask (torch path)"].append(wall(ask, torch_env))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"median of {args.runs} runs each (wall seconds):")
    for name, t in times.items():
        print(f"  {name:<28} {med[name]:6.2f} s   (runs: {', '.join(f'{x:.2f}' for x in t)})")
    base = med["import torch"]
    print(f"search / import torch:                      {med['search'] / base:.2f}")
    print(f"search (torch query path) / import torch:   {med['search (torch query path)'] / base:.2f}")
    print(
        f"speed-up of the ONNX query path:            {med['search (torch query path)'] / med['search']:.1f}x"
    )
    print(f"ask / import torch:                         {med['ask'] / base:.2f}")
    print(f"ask (torch path) / import torch:            {med['ask (torch path)'] / base:.2f}")
    print(f"speed-up of ask without torch:              {med['ask (torch path)'] / med['ask']:.1f}x")


if __name__ == "__main__":
    main()

"""Reranking throughput (pairs/s) at batch 1, 8, 32 and 64, through pagesight's :class:`Reranker`.

Run from the repository root::

    python bench/rerank.py                                  # CPU: the rerank-vl stand-in and nanoranker
    python bench/rerank.py --quick                          # fewer pairs, one timing each
    python bench/rerank.py --device cuda --shape rerank-vl  # CUDA, bf16: a random model of rerank-vl's shape

CPU rows (``--shape standin``, the default):

- ``standin-rerank-vl`` -- the stand-in of ``nvidia/llama-nemotron-rerank-vl-1b-v2`` the tests use
  (``tests/models/standin_rerank_vl``), built in a temporary folder and loaded through the real
  ``AutoModelForSequenceClassification`` / ``AutoProcessor`` remote-code path. Its network is tiny, so
  the rows measure pagesight's per-pair overhead (candidates, images opened, batching, the processor
  call, tensors to the device, logits back) rather than a model. Two inputs: text passages (~60
  words) and image+text pages (a 640x828 PNG file per page, opened from disk, plus its text).
- ``nanoranker`` -- the real scorer the ``nanoranker`` package ships (ONNX Runtime, CPU): text passages.

``--device cuda --shape rerank-vl``: a random-weight model built from transformers-native configs
(nothing downloaded) approximating ``llama-nemotron-rerank-vl-1b-v2`` (Eagle-style: a SigLIP vision
tower + a Llama-3.2-1B-sized decoder + a one-logit head), in bfloat16, ``sdpa`` attention (or
``flash_attention_2`` when flash-attn imports). What is approximated:

- vision: ``SiglipVisionModel`` of SigLIP so400m's shape (27 layers, 1152 wide, 16 heads, 4304 MLP) at
  512-px tiles with 16-px patches (1024 patches per tile), then a 2x2 pixel shuffle and a 2-layer MLP
  into the decoder: 256 tokens per tile, as the real processor counts them;
- decoder: ``LlamaModel`` with Llama-3.2-1B's shape (16 layers, 2048 wide, 32 heads, 8 KV heads, 8192
  MLP, vocabulary 128,256). The real decoder is bidirectional; this one is causal (same weights and
  matmul FLOPs; sdpa's causal kernel skips about half the attention work, so attention is cheaper here);
- head: a linear layer on the last position (left padding), one logit per pair;
- inputs: an image page = 7 tiles (6 + thumbnail, what ``max_input_tiles=6, use_thumbnail=True``
  gives a letter-size page) = 1792 image tokens + 256 text tokens = the 2048-token budget; a text page =
  512 tokens. Tiles are random pixels made on the GPU, so CPU preprocessing (PIL tiling, the
  bicubic resize) is not timed, and neither is tokenization.

Times are medians of ``--repeats`` runs after a warm-up; pairs/s = pairs / time, and ``x b1`` compares
each batch size with batch 1 of the same model and input in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCHES = (1, 8, 32, 64)
ROOT = Path(__file__).resolve().parents[1]

TEXT = (
    "the invoice lists the total amount due for services rendered during the quarter including tax "
    "shipping and handling charges payable within thirty days of receipt by bank transfer or cheque "
    "to the account named below late payments accrue interest at the statutory rate"
)
WORDS = TEXT.split(" ")


@dataclass
class Row:
    model: str
    input: str
    batch: int
    seconds: float
    pairs: int

    @property
    def rate(self) -> float:
        return self.pairs / self.seconds


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def passages(n: int, words: int = 60) -> list[str]:
    return [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(words)) for i in range(n)]


def page_files(folder: Path, n: int) -> list[Path]:
    """``n`` distinct letter-proportioned PNG pages (640x828) in ``folder``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = folder / f"page-{i}.png"
        Image.fromarray(rng.integers(0, 256, (828, 640, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


# -- CPU: the stand-in and nanoranker through Reranker ------------------------------------------------


def run_cpu(pairs: int, repeats: int) -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests" / "models" / "standin_rerank_vl"))
    from rerank_builders import build_standin_rerank_vl

    from pagesight.models.rerank import RerankCandidate, Reranker

    query = "what is the total amount due on the invoice?"
    texts = passages(pairs)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_standin_rerank_vl(Path(tmp) / "standin-rerank-vl")
        pages = page_files(Path(tmp), pairs)
        inputs: dict[str, list[Any]] = {
            "text": [RerankCandidate(text=t) for t in texts],
            "image+text": [
                RerankCandidate(text=t, image=p, source="bench.pdf", page=i + 1)
                for i, (t, p) in enumerate(zip(texts, pages, strict=True))
            ],
        }
        for name, cands in inputs.items():
            for batch in BATCHES:
                rr = Reranker(str(folder), trust_remote_code=True, device="cpu", batch_size=batch).load()
                seconds = median_time(lambda rr=rr, cands=cands: rr.logits(query, cands), repeats)
                rows.append(Row("standin-rerank-vl", name, batch, seconds, len(cands)))
    for batch in BATCHES:
        nano = Reranker("nanoranker", batch_size=batch).load()
        seconds = median_time(lambda nano=nano: nano.logits(query, texts), repeats)
        rows.append(Row("nanoranker", "text", batch, seconds, len(texts)))
    return rows


# -- CUDA: a random-weight model of rerank-vl-1b-v2's shape ------------------------------------------


def build_rerank_vl_shape(device: str, dtype: Any, llm_layers: int = 16, vision_layers: int = 27) -> Any:
    """A random SigLIP-so400m tower + Llama-3.2-1B decoder + one-logit head (see the module docstring)."""
    import torch
    from torch import nn
    from transformers import LlamaConfig, LlamaModel, SiglipVisionConfig, SiglipVisionModel

    vision_cfg = SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=vision_layers,
        num_attention_heads=16,
        image_size=512,
        patch_size=16,
    )
    llm_cfg = LlamaConfig(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=llm_layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=131072,
        rope_theta=500000.0,
    )
    attn = "sdpa"
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        attn = "flash_attention_2"
    vision_cfg._attn_implementation = attn
    llm_cfg._attn_implementation = attn

    class RerankVLShape(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision = SiglipVisionModel(vision_cfg)
            vh, lh = vision_cfg.hidden_size, llm_cfg.hidden_size
            self.mlp = nn.Sequential(
                nn.LayerNorm(4 * vh), nn.Linear(4 * vh, lh), nn.GELU(), nn.Linear(lh, lh)
            )
            self.llm = LlamaModel(llm_cfg)
            self.head = nn.Linear(lh, 1)
            self.grid = vision_cfg.image_size // vision_cfg.patch_size
            self.attn = attn

        def forward(self, input_ids: Any, pixel_values: Any = None, tiles: int = 0) -> Any:
            x = self.llm.embed_tokens(input_ids)
            if pixel_values is not None:
                v = self.vision(pixel_values=pixel_values).last_hidden_state  # (n*tiles, g*g, vh)
                n, g = v.shape[0], self.grid
                v = (
                    v.reshape(n, g // 2, 2, g // 2, 2, -1)
                    .permute(0, 1, 3, 2, 4, 5)
                    .reshape(n, (g // 2) ** 2, -1)
                )
                v = self.mlp(v).reshape(n // tiles, tiles * (g // 2) ** 2, -1)
                x = torch.cat([v, x], dim=1)  # the image first, as the real prompt puts it
            h = self.llm(inputs_embeds=x).last_hidden_state
            return self.head(h[:, -1]).float()  # (n, 1)

    torch.manual_seed(0)
    with torch.device(device):
        model = RerankVLShape()
    return model.to(dtype).eval()


def run_shape(
    device: str, pairs: int, repeats: int, llm_layers: int, vision_layers: int
) -> tuple[list[Row], str]:
    import torch

    from pagesight.models._colembed_batching import run_batched

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    model = build_rerank_vl_shape(device, dtype, llm_layers, vision_layers)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    vocab = model.llm.config.vocab_size
    tiles, image_tokens = 7, 7 * 256
    shapes = {"image+text (2048 tok)": (tiles, 2048 - image_tokens), "text (512 tok)": (0, 512)}

    def score(batch: list[int], n_tiles: int, text_tokens: int) -> list[float]:
        ids = torch.randint(0, vocab, (len(batch), text_tokens), device=device)
        pixels = None
        if n_tiles:
            pixels = torch.randn(len(batch) * n_tiles, 3, 512, 512, device=device, dtype=dtype)
        with torch.inference_mode():
            logits = model(ids, pixels, n_tiles)
        return logits[:, 0].cpu().tolist()

    rows = []
    items = list(range(pairs))
    for name, (n_tiles, text_tokens) in shapes.items():
        for batch in BATCHES:

            def run(batch: int = batch, n_tiles: int = n_tiles, text_tokens: int = text_tokens) -> None:
                run_batched(lambda b: score(b, n_tiles, text_tokens), items, batch)
                if cuda:
                    torch.cuda.synchronize()

            rows.append(Row("rerank-vl-1b-v2 shape", name, batch, median_time(run, repeats), pairs))
    where = torch.cuda.get_device_name(0) if cuda else "cpu"
    note = (
        f"{where}, {str(dtype).removeprefix('torch.')}, {model.attn} attention, {params:.0f}M parameters "
        f"({llm_layers} decoder layers, {vision_layers} vision layers), random weights"
    )
    return rows, note


# -- report -------------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'model':<22} {'input':<22} {'batch':>5} {'pairs':>6} {'seconds':>9} {'pairs/s':>9} {'x b1':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        base = next(r for r in rows if r.model == row.model and r.input == row.input and r.batch == 1)
        print(
            f"{row.model:<22} {row.input:<22} {row.batch:>5} {row.pairs:>6} {row.seconds:>9.3f} "
            f"{row.rate:>9.1f} {row.rate / base.rate:>5.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--shape",
        choices=("standin", "rerank-vl"),
        default=None,
        help="standin (CPU rows; default on cpu) or rerank-vl (random model of the real shape; cuda default)",
    )
    parser.add_argument("--pairs", type=int, default=None, help="pairs per timing (default 128, --quick 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timings per row (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="fewer pairs and one timing per row")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--llm-layers", type=int, default=16, help="decoder layers of the rerank-vl shape")
    parser.add_argument("--vision-layers", type=int, default=27, help="vision layers of the rerank-vl shape")
    args = parser.parse_args(argv)
    shape = args.shape or ("rerank-vl" if args.device == "cuda" else "standin")
    pairs = args.pairs or (64 if args.quick else 128)
    repeats = args.repeats or (1 if args.quick else 3)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "skipped: --device cuda asked for, but torch sees no CUDA device (torch "
            + torch.__version__
            + ")"
        )
        return 0
    load = os.getloadavg()[0]
    print(f"cpus: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, load average: {load:.1f}")
    if shape == "standin":
        if args.device == "cuda":
            print("note: the stand-in and nanoranker rows run on the CPU whatever --device says")
        rows = run_cpu(pairs, repeats)
        print(f"\n{pairs} pairs per timing, median of {repeats}, CPU\n")
    else:
        rows, note = run_shape(args.device, pairs, repeats, args.llm_layers, args.vision_layers)
        print(f"\n{pairs} pairs per timing, median of {repeats}; {note}\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

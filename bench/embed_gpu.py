"""Pages/s embedding page images with a random-weight model of ColEmbed-1B's shape, bf16, on CUDA.

The model is built from configs (no download): a SigLIP-400M-sized vision tower (27 layers, 1152
wide, 448 px tiles, 14 px patches), a 2x2 pixel-shuffle MLP into a Llama-3.2-1B-sized decoder (16
layers, 2048 wide, 32 heads, 8 KV heads), one L2-normalized vector per token: the shape of
``nvidia/llama-nemoretriever-colembed-1b-v1`` (Eagle2-1B). Its weights are random, so only speed
and memory mean anything (the decoder here is causal where ColEmbed's is bidirectional; the
cost per token is the same). Each page is a rendered-size image cut into ``--tiles`` tiles plus a
short text prompt, preprocessed on the CPU inside the timed loop, as the real remote code does.

Batches go through :func:`pagesight.models._colembed_batching.run_batched` (halving on CUDA OOM,
the size kept) and outputs through the NVIDIA backend's padding strip + renormalization, so the
numbers include pagesight's own overhead.

    python bench/embed_gpu.py                      # CUDA: 64 pages, batch 32 (halved on OOM)
    python bench/embed_gpu.py --pages 256 --tiles 6 --batch-size 64
    python bench/embed_gpu.py --smoke              # tiny shapes, any machine

Without CUDA the script runs the tiny-shape smoke version on the CPU and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from typing import Any

import numpy as np

LLAMA_3_2_1B = dict(
    vocab_size=128256,
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
)
"""The decoder shape of Llama-3.2-1B (what the 1B ColEmbed / embed-vl / rerank-vl models carry);
``bench/gpu_check_realcode.py`` uses it too."""


def build_model(tiny: bool, device: str, dtype: Any) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn
    from transformers import LlamaConfig, LlamaModel, SiglipVisionConfig, SiglipVisionModel

    if tiny:
        vision_cfg = SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=56,
            patch_size=14,
        )
        llm_cfg = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1000,
            max_position_embeddings=4096,
        )
    else:
        vision_cfg = SiglipVisionConfig(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=448,
            patch_size=14,
        )
        llm_cfg = LlamaConfig(
            **LLAMA_3_2_1B,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            tie_word_embeddings=True,
        )
    attn = "sdpa"
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        attn = "flash_attention_2"
    vision_cfg._attn_implementation = attn
    llm_cfg._attn_implementation = attn

    class PageEmbedder(nn.Module):
        """Vision tower -> pixel shuffle -> MLP -> decoder over [image, text] tokens -> unit vectors."""

        def __init__(self) -> None:
            super().__init__()
            self.vision = SiglipVisionModel(vision_cfg)
            vh, lh = vision_cfg.hidden_size, llm_cfg.hidden_size
            self.mlp = nn.Sequential(
                nn.LayerNorm(4 * vh), nn.Linear(4 * vh, lh), nn.GELU(), nn.Linear(lh, lh)
            )
            self.llm = LlamaModel(llm_cfg)
            self.image_size = vision_cfg.image_size
            self.grid = vision_cfg.image_size // vision_cfg.patch_size

        def forward(self, pixel_values: Any, input_ids: Any, tiles: int) -> Any:
            v = self.vision(pixel_values=pixel_values).last_hidden_state  # (B*T, g*g, vh)
            n, g = v.shape[0], self.grid
            v = v.reshape(n, g // 2, 2, g // 2, 2, -1).permute(0, 1, 3, 2, 4, 5).reshape(n, (g // 2) ** 2, -1)
            v = self.mlp(v).reshape(n // tiles, tiles * (g // 2) ** 2, -1)
            x = torch.cat([v, self.llm.embed_tokens(input_ids)], dim=1)
            h = self.llm(inputs_embeds=x).last_hidden_state  # no padding: every page has the same length
            return F.normalize(h.float(), dim=-1)

    torch.manual_seed(0)
    with torch.device(device):
        model = PageEmbedder()
    return model.to(dtype).eval()


def preprocess(pages: list[Any], image_size: int, tiles: int) -> Any:
    """Resize each page to a grid of ``tiles`` square tiles and stack them: (pages*tiles, 3, S, S)."""
    import torch

    cols = max(1, int(round(tiles**0.5)))
    rows = -(-tiles // cols)
    out = []
    for page in pages:
        grid = np.asarray(page.resize((cols * image_size, rows * image_size)), dtype=np.float32) / 127.5 - 1.0
        for t in range(tiles):
            r, c = divmod(t, cols)
            out.append(grid[r * image_size : (r + 1) * image_size, c * image_size : (c + 1) * image_size])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="pages per forward pass to start with")
    parser.add_argument("--tiles", type=int, default=4, help="448-px tiles per page")
    parser.add_argument("--text-tokens", type=int, default=64, help="prompt tokens per page")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (also the default without CUDA)")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from pagesight.models._colembed_batching import run_batched
    from pagesight.models._colembed_nvidia import token_matrices

    cuda = torch.cuda.is_available()
    tiny = args.smoke or not cuda
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    pages_n, start_batch, tiles = args.pages, args.batch_size, args.tiles
    if not cuda:
        print("no CUDA device: running the tiny-shape CPU smoke version (the numbers are not meaningful)")
        pages_n, start_batch, tiles = min(pages_n, 6), min(start_batch, 2), min(tiles, 2)
    elif tiny:
        print("--smoke: tiny shapes on CUDA (the numbers are not meaningful)")

    model = build_model(tiny, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    pages = [Image.fromarray(rng.integers(0, 256, (1650, 1275, 3), dtype=np.uint8)) for _ in range(pages_n)]
    vocab = model.llm.config.vocab_size
    chosen = {"batch_size": start_batch}

    def embed(batch: list[Any]) -> list[np.ndarray]:
        pixels = preprocess(batch, model.image_size, tiles).to(device, dtype, non_blocking=True)
        ids = torch.randint(0, vocab, (len(batch), args.text_tokens), device=device)
        with torch.inference_mode():
            out = model(pixels, ids, tiles)
        return token_matrices(out.cpu(), len(batch), what="page")

    def resized(size: int) -> None:
        chosen["batch_size"] = size

    embed(pages[: min(2, len(pages))])  # warm-up: kernels, allocator
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    matrices = run_batched(embed, pages, start_batch, on_resize=resized)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "shapes": "tiny smoke" if tiny else "ColEmbed-1B (Llama-3.2-1B decoder + SigLIP-400M tower)",
        "params_millions": round(params / 1e6, 1),
        "dtype": str(dtype).removeprefix("torch."),
        "attention": model.llm.config._attn_implementation,
        "pages": len(matrices),
        "tiles_per_page": tiles,
        "tokens_per_page": int(matrices[0].shape[0]),
        "dim": int(matrices[0].shape[1]),
        "batch_size_start": start_batch,
        "batch_size_chosen": chosen["batch_size"],
        "seconds": round(seconds, 3),
        "pages_per_second": round(len(matrices) / seconds, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""The issue-17 real-code checks that need CUDA (run by ``bench/gpu_check.sh``; prints one JSON line).

1. flash-attn: a random-weight decoder of Llama-3.2-1B's shape (16 layers, 2048 wide, 32 heads, 8 KV
   heads; what the 1B ColEmbed / embed-vl / rerank-vl models carry) in bf16 with
   ``flash_attention_2`` and with ``sdpa`` on the same input: the largest difference of the last
   hidden state, and pagesight's own choice of attention on CUDA.
2. The stand-ins of ``tests/models/standin_realcode`` on CUDA: the v1 stand-in that imports
   ``flash_attn`` at module top passes the environment check and loads; the embed-vl stand-in that
   forces flash-attention 2 in ``__init__`` loads when flash-attn is installed, and asked for
   ``sdpa`` the log names the override.

Without flash-attn installed the flash steps are reported as skipped, not failed. ``--smoke`` runs
step 2 on the CPU (no CUDA needed), to check the script itself.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "models" / "standin_realcode"))


def flash_vs_sdpa(results: dict[str, Any]) -> None:
    import torch
    from transformers import LlamaConfig, LlamaModel

    from pagesight.models._remote import _preferred_attention

    results["preferred_attention_cuda"] = _preferred_attention("cuda")
    if importlib.util.find_spec("flash_attn") is None:
        results["flash_vs_sdpa"] = "skipped: flash-attn not installed"
        return
    from embed_gpu import LLAMA_3_2_1B  # bench/ is this script's folder, first on sys.path

    cfg = dict(**LLAMA_3_2_1B, max_position_embeddings=8192)
    torch.manual_seed(0)
    ids = torch.randint(0, 128256, (4, 1024), device="cuda")
    outs = {}
    state = None
    for attn in ("flash_attention_2", "sdpa"):
        model = LlamaModel(LlamaConfig(**cfg, attn_implementation=attn)).to("cuda", torch.bfloat16).eval()
        if state is None:
            state = model.state_dict()
        else:
            model.load_state_dict(state)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            outs[attn] = model(input_ids=ids).last_hidden_state.float()
        torch.cuda.synchronize()
        results[f"forward_s_{attn}"] = round(time.perf_counter() - start, 3)
        del model
    diff = (outs["flash_attention_2"] - outs["sdpa"]).abs().max().item()
    scale = outs["sdpa"].abs().max().item()
    results["flash_vs_sdpa_max_abs_diff"] = diff
    results["flash_vs_sdpa_relative"] = diff / max(scale, 1e-6)


def standins(results: dict[str, Any], device: str = "cuda") -> None:
    from realcode_builders import build_embed_vl, build_v1

    from pagesight.models import ColEmbedEncoder, VLEncoder
    from pagesight.models.environment import diagnose
    from pagesight.models.registry import resolve

    have_flash = importlib.util.find_spec("flash_attn") is not None
    with tempfile.TemporaryDirectory() as tmp:
        v1 = build_v1(Path(tmp) / "v1-flash", flash_attn_at_top=True)
        report = diagnose(resolve(str(v1), "late-interaction"), device=device)
        results["v1_flash_env_ok"] = report.ok
        if have_flash:
            enc = ColEmbedEncoder(str(v1), backend="nvidia", trust_remote_code=True, device=device).load()
            rows = enc.encode_queries(["invoice total"])[0]
            results["v1_flash_loaded_rows"] = list(rows.shape)
        else:
            results["v1_flash_loaded_rows"] = "skipped: flash-attn not installed"
        forced = build_embed_vl(Path(tmp) / "forced", force_llm_attn="flash_attention_2")
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("pagesight").addHandler(handler)
        logging.getLogger("pagesight").setLevel(logging.WARNING)
        try:
            enc2 = VLEncoder(
                str(forced),
                backend="nvidia",
                trust_remote_code=True,
                device=device,
                attn_implementation="sdpa",
            )
            enc2.load()
            results["forced_fa2_loaded"] = True
            results["forced_fa2_override_logged"] = any("llm_config=flash_attention_2" in r for r in records)
        except Exception as e:  # without flash-attn: the translated error is what is checked
            results["forced_fa2_loaded"] = False
            results["forced_fa2_error"] = f"{type(e).__name__}: {str(e)[:200]}"


def main() -> int:
    import torch

    results: dict[str, Any] = {"cuda": torch.cuda.is_available()}
    if "--smoke" in sys.argv[1:]:  # the stand-in step on the CPU: the script itself runs
        standins(results, "cpu")
        print(json.dumps(results))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({**results, "skipped": "no CUDA"}))
        return 0
    results["gpu"] = torch.cuda.get_device_name(0)
    for step in (flash_vs_sdpa, standins):
        try:
            step(results)
        except Exception as e:
            results[f"{step.__name__}_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    print(json.dumps(results))
    return 1 if any(k.endswith("_error") for k in results) else 0


if __name__ == "__main__":
    sys.exit(main())

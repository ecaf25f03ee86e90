"""Save the real-code stand-ins (``modeling_realcode.py``) as remote-code model folders.

Each builder writes ``config.json`` with ``auto_map``, random weights and the modeling file(s), so
the tests go through the real ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` path.
:func:`hub_cache_copy` lays a folder out as one snapshot of a Hub cache (``models--owner--name/
snapshots/<commit>``, no ``refs/main``), the way a machine that downloaded only the pinned
revision holds it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
MODELING = HERE / "modeling_realcode.py"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realcode_build", MODELING)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(folder: Path, config: Any, model_cls: Any, auto_model: str, prefix_module: str = "") -> Path:
    """Save ``model_cls(config)``; ``prefix_module`` is a first line of a wrapper modeling file."""
    import torch

    torch.manual_seed(0)
    folder = Path(folder)
    model_cls(config).save_pretrained(folder)
    shutil.copy(MODELING, folder / MODELING.name)
    data = json.loads((folder / "config.json").read_text())
    data["auto_map"] = {
        "AutoConfig": f"modeling_realcode.{type(config).__name__}",
        "AutoModel": f"modeling_realcode.{auto_model}",
    }
    if prefix_module:
        wrapper = folder / "modeling_realcode_wrapped.py"
        wrapper.write_text(f"{prefix_module}\n\nfrom .modeling_realcode import {auto_model}  # noqa: F401\n")
        data["auto_map"]["AutoModel"] = f"modeling_realcode_wrapped.{auto_model}"
    (folder / "config.json").write_text(json.dumps(data, indent=2))
    return folder


def build_v1(folder: Path, *, flash_attn_at_top: bool = False) -> Path:
    """The ColEmbed v1 stand-in (composite-config ``to_dict`` bug; optionally ``import flash_attn``)."""
    m = _module()
    config = m.RealcodeV1Config(
        vision_config={"hidden_size": 16, "model_type": "siglip_vision_model"},
        llm_config={"hidden_size": 16, "model_type": "llama"},
        architectures=["RealcodeV1Model"],
    )
    prefix = (
        "import flash_attn  # noqa: F401  (the v1 code imports it at module top)" if flash_attn_at_top else ""
    )
    return _save(folder, config, m.RealcodeV1Model, "RealcodeV1Model", prefix)


def build_qwen(folder: Path, minilm: Path, *, datasets_at_top: bool = False, q_max_length: int = 64) -> Path:
    """The ColEmbed 4b/8b-v2 stand-in with MiniLM's tokenizer as what ``AutoProcessor`` finds."""
    m = _module()
    config = m.RealcodeQwenConfig(q_max_length=q_max_length, architectures=["RealcodeQwenModel"])
    prefix = "import datasets  # noqa: F401  (the 4b/8b-v2 code imports it)" if datasets_at_top else ""
    _save(folder, config, m.RealcodeQwenModel, "RealcodeQwenModel", prefix)
    for name in TOKENIZER_FILES:
        if (minilm / name).is_file():
            shutil.copy(minilm / name, Path(folder) / name)
    return Path(folder)


def build_embed_vl(folder: Path, minilm: Path | None = None, **quirks: Any) -> Path:
    """The embed-vl stand-in; ``quirks``: ``force_llm_attn``, ``inner_processor``, ``encode_typeerror``."""
    m = _module()
    config = m.RealcodeEmbedVLConfig(architectures=["RealcodeEmbedVLModel"])
    _save(folder, config, m.RealcodeEmbedVLModel, "RealcodeEmbedVLModel")
    path = Path(folder) / "config.json"  # the quirks act at load time, not while saving
    path.write_text(json.dumps({**json.loads(path.read_text()), **quirks}, indent=2))
    if minilm is not None:
        for name in TOKENIZER_FILES:
            if (minilm / name).is_file():
                shutil.copy(minilm / name, Path(folder) / name)
    return Path(folder)


def hub_cache_copy(folder: Path, cache: Path, repo_id: str, commit: str) -> Path:
    """Copy ``folder`` into ``cache`` as the only snapshot (``commit``) of Hub repo ``repo_id``."""
    owner, name = repo_id.split("/")
    repo = cache / f"models--{owner}--{name}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)  # no refs/main: only the pinned commit is here
    return snapshot

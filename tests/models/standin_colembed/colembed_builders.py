"""Build the models the ColEmbed tests load: the NVIDIA-style stand-in and a tiny MultiVectorEncoder."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
MODELING = HERE / "modeling_standin_colembed.py"
MODELING_OLD = HERE / "modeling_standin_colembed_old.py"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def standin_module() -> ModuleType:
    """The stand-in's modeling file imported as a plain module (to build and save weights)."""
    spec = importlib.util.spec_from_file_location("standin_colembed_build", MODELING)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_standin(
    folder: Path, *, old_transformers: bool = False, seed: int = 0, max_input_tiles: int = 1
) -> Path:
    """Save a random-weight stand-in in ``folder``: config.json with ``auto_map``, weights, modeling file(s).

    ``old_transformers=True`` points ``AutoModel`` at a modeling file that imports a symbol removed
    after transformers 4.49 and records ``transformers_version: 4.49.0`` in config.json, as a model
    saved with that version would. ``max_input_tiles`` > 1 makes images dynamically tiled (with a
    thumbnail), as NVIDIA's processors do; the default keeps one 32x32 tile (16 patch tokens).
    """
    import torch

    module = standin_module()
    model_file = "modeling_standin_colembed_old" if old_transformers else "modeling_standin_colembed"
    torch.manual_seed(seed)
    config = module.StandinColEmbedConfig(
        auto_map={
            "AutoConfig": "modeling_standin_colembed.StandinColEmbedConfig",
            "AutoModel": f"{model_file}.StandinColEmbedModel",
        },
        architectures=["StandinColEmbedModel"],
        max_input_tiles=max_input_tiles,
    )
    module.StandinColEmbedModel(config).save_pretrained(folder)
    shutil.copy(MODELING, folder / MODELING.name)
    if old_transformers:
        shutil.copy(MODELING_OLD, folder / MODELING_OLD.name)
        path = folder / "config.json"
        data = json.loads(path.read_text())
        data["transformers_version"] = "4.49.0"
        path.write_text(json.dumps(data, indent=2))
    return folder


def build_tiny_multivector(folder: Path, minilm: Path, *, seed: int = 0) -> Path:
    """Save a tiny random BERT (MiniLM's tokenizer) as a sentence-transformers MultiVectorEncoder.

    Query and document prompts are distinct single tokens of the vocabulary (``[unused0]``,
    ``[unused1]``), as ColBERT's ``[Q]`` / ``[D]`` markers are.
    """
    import torch
    from sentence_transformers import MultiVectorEncoder
    from transformers import BertConfig, BertModel

    raw = folder.parent / f"{folder.name}-raw"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(raw)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm / name, raw / name)
    model = MultiVectorEncoder(
        str(raw), device="cpu", prompts={"query": "[unused0] ", "document": "[unused1] "}
    )
    model.max_seq_length = 64
    model.save(str(folder))
    shutil.rmtree(raw)
    return folder

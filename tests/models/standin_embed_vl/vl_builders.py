"""Build the models the dense vision-language tests load, offline, into temporary folders.

- :func:`build_standin_embed_vl`: the NVIDIA embed-vl stand-in (config.json with ``auto_map``,
  random weights, the local modeling file), loaded through ``AutoModel.from_pretrained(folder,
  trust_remote_code=True)``;
- :func:`build_tiny_clip`: a tiny random CLIP saved as a sentence-transformers model folder
  (``SentenceTransformer(folder)`` embeds text and images into one space);
- :func:`build_tiny_siglip`: a tiny random SigLIP saved as a plain transformers folder;
- :func:`build_tiny_clip_vision`: a tiny random CLIP vision tower + image processor saved as a
  plain transformers folder (stands in for nomic-embed-vision's image side).

Nothing is downloaded: the CLIP tokenizer is a byte-level BPE with no merges built here.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
MODELING = HERE / "modeling_standin_embed_vl.py"

CLIP_IMAGE_SIZE = 32
CLIP_PROJECTION = 12


def standin_module() -> ModuleType:
    """The stand-in's modeling file imported as a plain module (to build and save weights)."""
    spec = importlib.util.spec_from_file_location("standin_embed_vl_build", MODELING)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_standin_embed_vl(folder: Path, *, hidden: int = 16, seed: int = 0) -> Path:
    """Save a random-weight embed-vl stand-in in ``folder`` and return ``folder``.

    The saved model returns ``(n, hidden)`` tensors from ``encode_queries`` /
    ``encode_documents`` and records each call in ``model.calls`` (see the modeling file).
    """
    import torch

    module = standin_module()
    torch.manual_seed(seed)
    config = module.StandinEmbedVLConfig(
        hidden_size=hidden,
        auto_map={
            "AutoConfig": "modeling_standin_embed_vl.StandinEmbedVLConfig",
            "AutoModel": "modeling_standin_embed_vl.StandinEmbedVLModel",
        },
        architectures=["StandinEmbedVLModel"],
    )
    folder = Path(folder)
    module.StandinEmbedVLModel(config).save_pretrained(folder)
    shutil.copy(MODELING, folder / MODELING.name)
    return folder


def clip_tokenizer() -> Any:
    """A byte-level CLIP tokenizer with no merges: every character is one token (514 tokens)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for ch in chars:
        vocab[ch] = len(vocab)
    for ch in chars:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def clip_image_processor() -> Any:
    """CLIP's PIL/numpy image processor (no torchvision) at :data:`CLIP_IMAGE_SIZE` pixels."""
    from transformers import CLIPImageProcessorPil

    size = CLIP_IMAGE_SIZE
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def _clip_config(vocab_size: int, bos: int, eos: int) -> Any:
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": eos,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=CLIP_PROJECTION,
    )


def build_tiny_clip(folder: Path, *, seed: int = 0, legacy: bool = False) -> Path:
    """Save a tiny random CLIP as a sentence-transformers model in ``folder`` and return ``folder``.

    ``SentenceTransformer(folder)`` then embeds texts (``get_text_features``) and PIL images
    (``get_image_features``) into one :data:`CLIP_PROJECTION`-d space. Text longer than 64 tokens
    is cut (the model's positions). ``legacy=True`` writes the layout of the Hub's
    ``sentence-transformers/clip-ViT-B-32``: ``modules.json`` naming the old
    ``sentence_transformers.models.CLIPModel`` module, the model in ``0_CLIPModel/``.
    """
    import json

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from transformers import CLIPModel, CLIPProcessor

    folder = Path(folder)
    raw = folder / "0_CLIPModel" if legacy else folder.parent / f"{folder.name}-raw"
    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    config = _clip_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    CLIPModel(config).save_pretrained(raw)
    CLIPProcessor(image_processor=clip_image_processor(), tokenizer=tokenizer).save_pretrained(raw)
    if legacy:
        module = {
            "idx": 0,
            "name": "0",
            "path": "0_CLIPModel",
            "type": "sentence_transformers.models.CLIPModel",
        }
        (folder / "modules.json").write_text(json.dumps([module]))
        return folder
    SentenceTransformer(modules=[Transformer(str(raw), max_seq_length=64)], device="cpu").save(str(folder))
    shutil.rmtree(raw)
    return folder


def build_tiny_clip_vision(folder: Path, *, hidden: int = 16, seed: int = 0) -> Path:
    """Save a tiny random CLIP vision tower and its image processor as a transformers folder.

    ``AutoModel.from_pretrained(folder)`` gives a ``CLIPVisionModel`` whose
    ``last_hidden_state[:, 0]`` is the image vector (as nomic-embed-vision-v1.5 is read).
    """
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=8,
    )
    CLIPVisionModel(config).save_pretrained(folder)
    clip_image_processor().save_pretrained(folder)
    return folder


def build_tiny_siglip(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random SigLIP (CLIP's byte tokenizer and PIL image processor) as a transformers folder.

    No ``modules.json``: sentence-transformers loads it as a plain transformers model, the way
    ``google/siglip-base-patch16-224`` loads. Its text tower pools the LAST position, so the
    vector depends on padding (SigLIP was trained on text padded to 64 tokens).
    """
    import torch
    from transformers import CLIPProcessor, SiglipConfig, SiglipModel

    folder = Path(folder)
    tokenizer = clip_tokenizer()
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
    )
    SiglipModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=clip_image_processor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder

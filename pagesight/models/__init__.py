"""Framework-free encoders (numpy in and out; torch inside).

Importing this package does not import torch, transformers or ollama: the backends load them
on first use.
"""

from __future__ import annotations

from pagesight.models.base import DenseTextEncoder, EmbedderInfo
from pagesight.models.matryoshka import MatryoshkaEncoder, truncate_embeddings
from pagesight.models.registry import REGISTRY, ModelSpec, known_aliases, resolve

__all__ = [
    "DenseTextEncoder",
    "EmbedderInfo",
    "MatryoshkaEncoder",
    "ModelSpec",
    "REGISTRY",
    "known_aliases",
    "resolve",
    "truncate_embeddings",
]

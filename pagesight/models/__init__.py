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

# Late interaction, importable from here without joining ``__all__`` yet (tests pin ``__all__``).
_LAZY = {
    "ColEmbedEncoder": ("pagesight.models.colembed", "ColEmbedEncoder"),
    "LateInteractionEncoder": ("pagesight.models.base", "LateInteractionEncoder"),
    "LATE_INTERACTION": ("pagesight.models.registry", "LATE_INTERACTION"),
    "resolve_late_interaction": ("pagesight.models.registry", "resolve_late_interaction"),
    "run_batched": ("pagesight.models._colembed_batching", "run_batched"),
    "Reranker": ("pagesight.models.rerank", "Reranker"),
    "RerankCandidate": ("pagesight.models.rerank", "RerankCandidate"),
    "RerankResult": ("pagesight.models.rerank", "RerankResult"),
    "RERANKERS": ("pagesight.models.rerank", "RERANKERS"),
    "resolve_reranker": ("pagesight.models.rerank", "resolve_reranker"),
    # Dense vision-language (issue 4), likewise outside ``__all__``.
    "VLEncoder": ("pagesight.models.vl", "VLEncoder"),
    "DENSE_VL": ("pagesight.models.registry", "DENSE_VL"),
    "resolve_dense_vl": ("pagesight.models.registry", "resolve_dense_vl"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Framework-free encoders and rerankers (numpy in and out; torch inside), one package per family.

- :mod:`.dense_text`: :class:`MatryoshkaEncoder` (sentence-transformers, Ollama);
- :mod:`.dense_vl`: ``VLEncoder`` (NVIDIA embed-vl, CLIP / SigLIP / Nomic vision, NV-Embed, E5-V);
- :mod:`.late_interaction`: ``ColEmbedEncoder`` (NVIDIA ColEmbed, ColBERT / ColPali, token vectors);
- :mod:`.rerank`: ``Reranker`` (NVIDIA rerank-vl, cross-encoders, nanoranker);
- :mod:`.generate`: the answer generators.

Each family is a facade over one file per backend; :mod:`.base` holds what they share (the
protocols, ``LoadOptions``, the lazy lifecycle) and :mod:`.registry` the one table of models.
Importing this package does not import torch, transformers or ollama: the backends load them
on first use.
"""

from __future__ import annotations

from pagesight.models.base import DenseTextEncoder, EmbedderInfo
from pagesight.models.dense_text import MatryoshkaEncoder, truncate_embeddings
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

# The other families and the shared pieces, importable from here (lazily) outside ``__all__``.
_LAZY = {
    "ColEmbedEncoder": ("pagesight.models.late_interaction", "ColEmbedEncoder"),
    "LateInteractionEncoder": ("pagesight.models.base", "LateInteractionEncoder"),
    "LATE_INTERACTION": ("pagesight.models.registry", "LATE_INTERACTION"),
    "resolve_late_interaction": ("pagesight.models.registry", "resolve_late_interaction"),
    "run_batched": ("pagesight.models._batching", "run_batched"),
    "Reranker": ("pagesight.models.rerank", "Reranker"),
    "RerankCandidate": ("pagesight.models.rerank", "RerankCandidate"),
    "RerankResult": ("pagesight.models.rerank", "RerankResult"),
    "RERANKERS": ("pagesight.models.rerank", "RERANKERS"),
    "resolve_reranker": ("pagesight.models.rerank", "resolve_reranker"),
    "VLEncoder": ("pagesight.models.dense_vl", "VLEncoder"),
    "DENSE_VL": ("pagesight.models.registry", "DENSE_VL"),
    "resolve_dense_vl": ("pagesight.models.registry", "resolve_dense_vl"),
    "DensePageEncoder": ("pagesight.models.base", "DensePageEncoder"),
    "LoadOptions": ("pagesight.models.base", "LoadOptions"),
    "MODELS": ("pagesight.models.registry", "MODELS"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""LlamaIndex adapters (``pip install "pagesight[llamaindex]"``)."""

from __future__ import annotations

from pagesight.integrations.llama_index.embeddings import MatryoshkaEmbedding

__all__ = ["MatryoshkaEmbedding"]

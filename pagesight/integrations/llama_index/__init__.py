"""LlamaIndex adapters (``pip install "pagesight[llamaindex]"``)."""

from __future__ import annotations

from pagesight.integrations.llama_index.colembed import ColEmbedEmbedding
from pagesight.integrations.llama_index.embeddings import MatryoshkaEmbedding
from pagesight.integrations.llama_index.readers import PageReader
from pagesight.integrations.llama_index.rerank import VLRerankPostprocessor
from pagesight.integrations.llama_index.retrievers import LateInteractionNodeRetriever, PageNodeRetriever
from pagesight.integrations.llama_index.vl import VLEmbedding

__all__ = [
    "ColEmbedEmbedding",
    "LateInteractionNodeRetriever",
    "MatryoshkaEmbedding",
    "PageNodeRetriever",
    "PageReader",
    "VLEmbedding",
    "VLRerankPostprocessor",
]

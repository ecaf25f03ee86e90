"""LangChain adapters (``pip install "pagesight[langchain]"``)."""

from __future__ import annotations

from pagesight.integrations.langchain.colembed import ColEmbedEmbeddings
from pagesight.integrations.langchain.embeddings import MatryoshkaEmbeddings
from pagesight.integrations.langchain.loaders import PageLoader
from pagesight.integrations.langchain.rerank import VLReranker
from pagesight.integrations.langchain.retrievers import LateInteractionRetriever, PageRetriever
from pagesight.integrations.langchain.vl import VLEmbeddings

__all__ = [
    "ColEmbedEmbeddings",
    "LateInteractionRetriever",
    "MatryoshkaEmbeddings",
    "PageLoader",
    "PageRetriever",
    "VLEmbeddings",
    "VLReranker",
]

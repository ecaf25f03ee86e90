"""LangChain adapters (``pip install "pagesight[langchain]"``)."""

from __future__ import annotations

from pagesight.integrations.langchain.colembed import ColEmbedEmbeddings
from pagesight.integrations.langchain.embeddings import MatryoshkaEmbeddings
from pagesight.integrations.langchain.retrievers import LateInteractionRetriever

__all__ = ["ColEmbedEmbeddings", "LateInteractionRetriever", "MatryoshkaEmbeddings"]

"""LangChain adapters (``pip install "pagesight[langchain]"``)."""

from __future__ import annotations

from pagesight.integrations.langchain.embeddings import MatryoshkaEmbeddings

__all__ = ["MatryoshkaEmbeddings"]

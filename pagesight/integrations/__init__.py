"""LangChain and LlamaIndex adapters and the prebuilt chain and query engine, imported lazily.

``import pagesight.integrations`` works with only the core installed; touching a class whose
framework is missing raises ``ImportError`` naming the ``pip install "pagesight[extra]"`` line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pagesight._deps import lazy_attribute

if TYPE_CHECKING:
    from pagesight.integrations.langchain.chain import build_langchain_chain as build_langchain_chain
    from pagesight.integrations.langchain.colembed import ColEmbedEmbeddings as ColEmbedEmbeddings
    from pagesight.integrations.langchain.embeddings import MatryoshkaEmbeddings as MatryoshkaEmbeddings
    from pagesight.integrations.langchain.loaders import PageLoader as PageLoader
    from pagesight.integrations.langchain.rerank import VLReranker as VLReranker
    from pagesight.integrations.langchain.retrievers import (
        LateInteractionRetriever as LateInteractionRetriever,
    )
    from pagesight.integrations.langchain.retrievers import PageRetriever as PageRetriever
    from pagesight.integrations.langchain.vl import VLEmbeddings as VLEmbeddings
    from pagesight.integrations.llama_index.colembed import ColEmbedEmbedding as ColEmbedEmbedding
    from pagesight.integrations.llama_index.embeddings import MatryoshkaEmbedding as MatryoshkaEmbedding
    from pagesight.integrations.llama_index.query_engine import (
        build_llamaindex_query_engine as build_llamaindex_query_engine,
    )
    from pagesight.integrations.llama_index.readers import PageReader as PageReader
    from pagesight.integrations.llama_index.rerank import VLRerankPostprocessor as VLRerankPostprocessor
    from pagesight.integrations.llama_index.retrievers import (
        LateInteractionNodeRetriever as LateInteractionNodeRetriever,
    )
    from pagesight.integrations.llama_index.retrievers import PageNodeRetriever as PageNodeRetriever
    from pagesight.integrations.llama_index.vl import VLEmbedding as VLEmbedding

_LAZY: dict[str, tuple[str, str | None]] = {
    "ColEmbedEmbeddings": ("pagesight.integrations.langchain.colembed", "langchain"),
    "LateInteractionRetriever": ("pagesight.integrations.langchain.retrievers", "langchain"),
    "MatryoshkaEmbeddings": ("pagesight.integrations.langchain.embeddings", "langchain"),
    "PageLoader": ("pagesight.integrations.langchain.loaders", "langchain"),
    "PageRetriever": ("pagesight.integrations.langchain.retrievers", "langchain"),
    "VLEmbeddings": ("pagesight.integrations.langchain.vl", "langchain"),
    "VLReranker": ("pagesight.integrations.langchain.rerank", "langchain"),
    "ColEmbedEmbedding": ("pagesight.integrations.llama_index.colembed", "llamaindex"),
    "LateInteractionNodeRetriever": ("pagesight.integrations.llama_index.retrievers", "llamaindex"),
    "MatryoshkaEmbedding": ("pagesight.integrations.llama_index.embeddings", "llamaindex"),
    "PageNodeRetriever": ("pagesight.integrations.llama_index.retrievers", "llamaindex"),
    "PageReader": ("pagesight.integrations.llama_index.readers", "llamaindex"),
    "VLEmbedding": ("pagesight.integrations.llama_index.vl", "llamaindex"),
    "VLRerankPostprocessor": ("pagesight.integrations.llama_index.rerank", "llamaindex"),
    "build_langchain_chain": ("pagesight.integrations.langchain.chain", "langchain"),
    "build_llamaindex_query_engine": ("pagesight.integrations.llama_index.query_engine", "llamaindex"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _LAZY)


def __dir__() -> list[str]:
    return __all__

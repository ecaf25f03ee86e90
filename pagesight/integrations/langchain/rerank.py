"""LangChain ``BaseDocumentCompressor`` over :class:`~pagesight.models.rerank.Reranker`."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from pagesight.integrations._encoder import image_root
from pagesight.integrations._fields import RerankFields
from pagesight.integrations.langchain._convert import document_candidate

__all__ = ["VLReranker"]


class VLReranker(RerankFields, BaseDocumentCompressor):
    """Reranks documents by looking at the query and each page's image and/or text, for LangChain.

    Each document is scored against the query by a cross-encoder (NVIDIA rerank-vl sees the page
    image, its text or both; text cross-encoders and nanoranker see the text). The ``top_n`` best
    come back best first, as **copies** with ``metadata["relevance_score"]`` (in ``[0, 1]``); the
    input documents are never changed.

    A page's image is ``metadata["image"]``: an absolute path, or a path relative to ``store``'s
    image folder (what a plain Chroma query of a pagesight store returns); the text is
    ``page_content``.

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,gpu]"       # llama-nemotron-rerank-vl-1b-v2, cross-encoders
            pip install "pagesight[langchain,offline]"   # nanoranker (bundled, text only)

    Instantiate:
        .. code-block:: python

            from pagesight.integrations import VLReranker

            reranker = VLReranker(trust_remote_code=True, top_n=3)   # llama-nemotron-rerank-vl-1b-v2
            reranker = VLReranker(model="nanoranker", top_n=3)         # offline, text only

    Use:
        .. code-block:: python

            docs = reranker.compress_documents(retrieved_docs, "what is the invoice total?")
            docs[0].metadata["relevance_score"]       # 0.93: best first, at most top_n documents

            from langchain_classic.retrievers import ContextualCompressionRetriever
            retriever = ContextualCompressionRetriever(base_compressor=reranker,
                                                       base_retriever=vector_store.as_retriever(k=20))

    Nothing loads in the constructor; the model loads on the first non-empty call.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> list[Document]:
        """Return copies of the ``top_n`` most relevant documents, best first, with ``relevance_score``.

        Args:
            documents: the retrieved documents (left unchanged).
            query: the search query.
            callbacks: unused (LangChain's interface).
        """
        if not documents or self.top_n == 0:
            return []
        root = image_root(self.store)
        candidates = [document_candidate(d, root) for d in documents]
        results = self.reranker.rerank(query, candidates, top_n=self.top_n)
        return [
            documents[r.index].model_copy(
                update={"metadata": {**documents[r.index].metadata, "relevance_score": r.score}}
            )
            for r in results
        ]

"""LangChain ``BaseDocumentCompressor`` over :class:`~pagesight.models.rerank.Reranker`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from pagesight.integrations._encoder import build_reranker, image_root, rerank_candidate
from pagesight.models.rerank import RerankBackendName, Reranker
from pagesight.models.vl import PageInput
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore

__all__ = ["VLReranker"]


class VLReranker(BaseDocumentCompressor):
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

    model: str = "llama-nemotron-rerank-vl-1b-v2"
    """Alias (``llama-nemotron-rerank-vl-1b-v2``, ``ms-marco-minilm-l6-v2``, ``nanoranker``), Hugging
    Face id or local folder."""

    backend: RerankBackendName = "auto"
    """Which runtime serves the model (``nvidia``, ``cross-encoder``, ``nanoranker``); ``auto`` takes
    the model's own."""

    top_n: int = Field(default=5, ge=0)
    """How many documents to return (``0`` returns none and loads nothing)."""

    device: str | None = None
    """Torch device (``None``: CUDA when available, else CPU)."""

    dtype: str | None = None
    """Weight dtype such as ``"bfloat16"`` or ``"float32"`` (``None``: bf16 on CUDA, fp32 on CPU)."""

    batch_size: int = Field(default=8, ge=1)
    """Query-document pairs per forward pass."""

    trust_remote_code: bool = False
    """Allow running code from the model's repository (the NVIDIA reranker needs it)."""

    revision: str | None = None
    """Hub revision overriding the registry's pinned one."""

    attn_implementation: str | None = None
    """Attention kernel (``"flash_attention_2"``, ``"sdpa"``, ``"eager"``; ``None``: the best available)."""

    page_input: PageInput = "auto"
    """What of a page the model sees: ``image``, ``text`` or ``image_text``; ``auto`` takes both
    when the model can and the page has both."""

    max_length: int | None = Field(default=None, ge=1)
    """Token limit per pair (``None``: 2048 when a page image is in the batch, 8192 for text only)."""

    show_progress: bool = False
    """Show a progress bar while scoring."""

    store: PageStore | MultiVectorStore | str | Path | None = None
    """Where relative image paths point: a store, or an embedded store's folder (images in
    ``<folder>/images``); ``None`` takes paths as they are."""

    _reranker: Reranker = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._reranker = build_reranker(self)

    @property
    def reranker(self) -> Reranker:
        """The framework-free reranker doing the work."""
        return self._reranker

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
        candidates = [rerank_candidate(d.page_content, d.metadata, root) for d in documents]
        results = self._reranker.rerank(query, candidates, top_n=self.top_n)
        return [
            documents[r.index].model_copy(
                update={"metadata": {**documents[r.index].metadata, "relevance_score": r.score}}
            )
            for r in results
        ]

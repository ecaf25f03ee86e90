"""LangChain retriever over any pagesight index: dense, vision-language or late interaction, any mode."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from pagesight.errors import ConfigurationError
from pagesight.integrations._search import IndexSearch, check_search_options

__all__ = ["LateInteractionRetriever", "PageRetriever"]


class PageRetriever(BaseRetriever):
    """Pages of a pagesight index as LangChain ``Document`` s, searched as ``pagesight search`` does.

    Any store: dense text (MiniLM, Nomic), dense vision-language (embed-vl, CLIP) or late
    interaction (ColEmbed, exact MaxSim over the summary-vector candidates). Any mode:
    ``"hybrid"`` (dense fused with BM25, the default), ``"dense"`` or ``"bm25"``. An optional
    reranker re-scores the first ``rerank_candidates`` pages. ``source`` keeps one document's
    pages. Models that embed images also take a query image (``invoke("", image="photo.png")``).

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,chroma,offline]"

    Instantiate:
        .. code-block:: python

            from pagesight import Index
            from pagesight.integrations.langchain import PageRetriever

            retriever = Index.open("index/").as_langchain_retriever(k=4)   # the same as:
            retriever = PageRetriever(index=Index.open("index/"), k=4)
            retriever = PageRetriever(store="index/", mode="bm25", source="report.pdf")

    Use:
        .. code-block:: python

            docs = retriever.invoke("what is the invoice total?")          # up to k Documents
            docs = retriever.invoke("invoice total", k=1, mode="dense")     # per-call options
            docs = retriever.invoke("", image="scan.png")                  # image models only
            docs[0].page_content          # the page's text
            docs[0].metadata    # {"source": "report.pdf", "page": 3, "image": "/.../p3.png" or None,
                                #  "score": 0.83, "id": "...", "text_source": "layer"}

    ``score`` is the mode's: fused (0 to 1) in ``"hybrid"``, cosine or MaxSim (a sum over query
    tokens) in ``"dense"``, BM25 in ``"bm25"``, the reranker's relevance with a reranker.
    Searching runs in a worker thread for ``ainvoke``. A query embedded with another model than
    the store's raises :class:`~pagesight.errors.StoreMismatchError` naming both.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    index: Any = None
    """A :class:`pagesight.Index` to search (give this or ``store``)."""

    store: Any = None
    """A store to search instead: a ``PageStore``, ``MultiVectorStore``, store folder or Chroma
    server URL (opened on the first search)."""

    embeddings: Any = None
    """Embeds queries: pagesight's ``MatryoshkaEmbeddings`` / ``VLEmbeddings`` / ``ColEmbedEmbeddings``
    or a model name; ``None``: the model the store records."""

    encoder: Any = None
    """A framework-free encoder (``MatryoshkaEncoder``, ``VLEncoder``, ``ColEmbedEncoder``) instead of
    ``embeddings``."""

    k: int = Field(default=4, ge=1)
    """How many pages to return (``invoke(query, k=...)`` overrides it for one call)."""

    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    """``"hybrid"`` (dense fused with BM25), ``"dense"`` or ``"bm25"``."""

    reranker: Any = None
    """A reranker name (``"nanoranker"``, ``"llama-nemotron-rerank-vl-1b-v2"``), a pagesight
    ``Reranker`` or ``VLReranker``; ``None``: the index's profile's, ``"none"``: no reranker."""

    rerank_candidates: int = Field(default=20, ge=1)
    """Pages the reranker sees (at least ``k``)."""

    source: str | None = None
    """Only search the pages of this source (a URL, or a local path spelled any way); ``None``: all."""

    exhaustive: bool = False
    """Late interaction: score every stored page with MaxSim instead of the proposed candidates."""

    candidates: int | None = Field(default=None, ge=1)
    """Late interaction: pages the summary-vector search proposes for exact MaxSim (``None``: at
    least 100)."""

    maxsim_device: str | None = None
    """Late interaction: where MaxSim runs: ``None``/``"cpu"``, or ``"cuda"``/``"cuda:N"``."""

    trust_remote_code: bool = False
    """Allow the models' own code (the NVIDIA models need it)."""

    _search: IndexSearch = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> PageRetriever:
        if (self.index is None) == (self.store is None):
            raise ConfigurationError("give exactly one of `index` (a pagesight Index) or `store`")
        if self.embeddings is not None and self.encoder is not None:
            raise ConfigurationError(
                "give at most one of `embeddings` (pagesight embeddings) or `encoder` (an encoder object)"
            )
        where = self.index if self.index is not None else self.store
        embedder = self.embeddings if self.embeddings is not None else self.encoder
        self._search = IndexSearch(where, embedder, trust_remote_code=self.trust_remote_code)
        return self

    @property
    def query_encoder(self) -> Any:
        """The encoder that embeds queries (built on first use; the store opens to find it)."""
        return self._search.index.encoder

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: Literal["hybrid", "dense", "bm25"] | None = None,
        source: str | None = None,
        image: Any = None,
        exhaustive: bool | None = None,
        candidates: int | None = None,
    ) -> list[Document]:
        """Return the best pages for ``query`` as Documents, best first.

        ``invoke(query, k=..., mode=..., source=..., image=..., exhaustive=..., candidates=...)``
        lands here; each argument left ``None`` takes the field of the same name.

        Args:
            query: the search query (may be ``""`` with ``image``).
            k: pages to return.
            mode: ``"hybrid"``, ``"dense"`` or ``"bm25"``.
            source: only search the pages of this source.
            image: search by this image (path, ``PIL.Image.Image`` or encoded bytes); the store's
                model must embed images, else :class:`~pagesight.errors.ImageQueryError`.
            exhaustive: late interaction: score every page.
            candidates: late interaction: pages proposed for MaxSim scoring.
        """
        from pagesight.integrations.langchain._convert import hit_document

        k = self.k if k is None else k
        mode = self.mode if mode is None else mode
        check_search_options(k=k, mode=mode, rerank_candidates=self.rerank_candidates, candidates=candidates)
        hits = self._search.search(
            query,
            k=k,
            mode=mode,
            reranker=self.reranker,
            rerank_candidates=self.rerank_candidates,
            source=self.source if source is None else source,
            image=image,
            exhaustive=self.exhaustive if exhaustive is None else exhaustive,
            candidates=self.candidates if candidates is None else candidates,
            maxsim_device=self.maxsim_device,
        )
        return [hit_document(hit) for hit in hits]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        **options: Any,
    ) -> list[Document]:
        return self.search(query, **options)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **options: Any,
    ) -> list[Document]:
        return await asyncio.to_thread(self.search, query, **options)


class LateInteractionRetriever(PageRetriever):
    """:class:`PageRetriever` under its earlier name, searching by MaxSim alone (``mode="dense"``).

    Kept for code written before :class:`PageRetriever`; the same class with ``mode`` defaulting
    to ``"dense"``, so ``score`` stays the MaxSim score::

        LateInteractionRetriever(store=MultiVectorStore("index/"), embeddings=ColEmbedEmbeddings(), k=4)
    """

    mode: Literal["hybrid", "dense", "bm25"] = "dense"
    """``"dense"`` (MaxSim alone, this name's default), ``"hybrid"`` or ``"bm25"``."""

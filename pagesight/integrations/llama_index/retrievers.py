"""LlamaIndex retriever over any pagesight index: dense, vision-language or late interaction, any mode."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from pagesight._checks import check_int
from pagesight.errors import ConfigurationError
from pagesight.integrations._convert import hit_metadata
from pagesight.integrations._search import IndexSearch, check_search_options
from pagesight.integrations.llama_index._convert import hit_node
from pagesight.types import Hit

__all__ = ["LateInteractionNodeRetriever", "PageNodeRetriever"]

# Kept out of the text an LLM or an embedder sees: a local file path is noise to both.
_HIDDEN_KEYS = ["image", "id", "text_source"]

Mode = Literal["hybrid", "dense", "bm25"]


class PageNodeRetriever(BaseRetriever):
    """Pages of a pagesight index as LlamaIndex ``NodeWithScore`` s, searched as ``pagesight search`` does.

    Any store: dense text, dense vision-language or late interaction (exact MaxSim over the
    summary-vector candidates). Any mode: ``"hybrid"`` (dense fused with BM25, the default),
    ``"dense"`` or ``"bm25"``. An optional reranker re-scores the first ``rerank_candidates``
    pages; ``source`` keeps one document's pages. Models that embed images also take a query
    image: ``QueryBundle("", image_path="photo.png")`` or :meth:`image_retrieve`.

    Nodes: a page with a rendered image comes back as an ``ImageNode`` (``image_path`` set, the
    page's text in ``text``), a text-only page as a ``TextNode``. ``ImageNode`` is a ``TextNode``,
    so text synthesizers (``RetrieverQueryEngine``) read the text as usual while multimodal ones
    find the page image. Node ids are the store's page ids; ``metadata`` holds ``source``,
    ``page``, ``image`` (path or ``None``), ``id`` and ``text_source``, all but ``source`` and
    ``page`` hidden from the LLM and the embedder; the score is the ``NodeWithScore``'s.

    Install:
        ``pip install "pagesight[llamaindex,chroma,offline]"``

    Instantiate::

        from pagesight import Index
        from pagesight.integrations.llama_index import PageNodeRetriever

        retriever = Index.open("index/").as_llamaindex_retriever(similarity_top_k=3)  # the same as:
        retriever = PageNodeRetriever(Index.open("index/"), similarity_top_k=3)
        retriever = PageNodeRetriever("index/", mode="bm25", source="report.pdf")

    Use::

        nodes = retriever.retrieve("what is the invoice total?")     # up to 3 NodeWithScore
        nodes[0].score, nodes[0].node.metadata["source"], nodes[0].node.metadata["page"]
        nodes = retriever.image_retrieve("scan.png")                 # image models only

        from llama_index.core.query_engine import RetrieverQueryEngine
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)

    ``aretrieve`` runs the search in a worker thread. A query embedded with another model than the
    store's raises :class:`~pagesight.errors.StoreMismatchError` naming both.
    """

    def __init__(
        self,
        index: Any,
        embed_model: Any = None,
        *,
        encoder: Any = None,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        mode: Mode = "hybrid",
        reranker: Any = None,
        rerank_candidates: int = 20,
        source: str | None = None,
        exhaustive: bool = False,
        candidates: int | None = None,
        maxsim_device: str | None = None,
        trust_remote_code: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        """Describe the retriever; nothing loads or opens until the first query.

        Args:
            index: a :class:`pagesight.Index`, a ``PageStore``, a ``MultiVectorStore``, a store
                folder or a Chroma server URL.
            embed_model: embeds queries: pagesight's ``MatryoshkaEmbedding`` / ``VLEmbedding`` /
                ``ColEmbedEmbedding`` or a model name; ``None``: the model the store records.
            encoder: a framework-free encoder instead of ``embed_model``.
            similarity_top_k: how many pages to return.
            mode: ``"hybrid"``, ``"dense"`` or ``"bm25"``.
            reranker: a reranker name, a pagesight ``Reranker`` or ``VLRerankPostprocessor``;
                ``None``: the index's profile's; ``"none"``: no reranker.
            rerank_candidates: pages the reranker sees (at least ``similarity_top_k``).
            source: only search the pages of this source (a URL, or a local path spelled any way).
            exhaustive: late interaction: score every stored page with MaxSim.
            candidates: late interaction: pages the summary-vector search proposes for MaxSim
                (``None``: at least 100).
            maxsim_device: late interaction: where MaxSim runs (``None``/``"cpu"``, ``"cuda"``).
            trust_remote_code: allow the models' own code (the NVIDIA models need it).
            callback_manager: LlamaIndex callbacks.
            verbose: print retrieval steps.

        Raises:
            ConfigurationError: both ``embed_model`` and ``encoder``, an index that is none of the
                above, an unknown mode or a count below 1.
        """
        if embed_model is not None and encoder is not None:
            raise ConfigurationError(
                "give at most one of `embed_model` (pagesight embeddings) or `encoder` (an encoder object)"
            )
        check_int("similarity_top_k", similarity_top_k, least=1)
        check_search_options(
            k=similarity_top_k, mode=mode, rerank_candidates=rerank_candidates, candidates=candidates
        )
        embedder = embed_model if embed_model is not None else encoder
        self._search = IndexSearch(index, embedder, trust_remote_code=trust_remote_code)
        self.embed_model = embed_model
        self.similarity_top_k = similarity_top_k
        self.mode: Mode = mode
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self.source = source
        self.exhaustive = exhaustive
        self.candidates = candidates
        self.maxsim_device = maxsim_device
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def index(self) -> Any:
        """The :class:`pagesight.Index` searched (opened on first use)."""
        return self._search.index

    @property
    def encoder(self) -> Any:
        """The encoder that embeds queries (built on first use; the store opens to find it)."""
        return self._search.index.encoder

    def _nodes(self, hits: list[Hit]) -> list[NodeWithScore]:
        return [
            NodeWithScore(node=hit_node(hit, hit_metadata(hit, score=False), _HIDDEN_KEYS), score=hit.score)
            for hit in hits
        ]

    def search(self, query: str = "", *, image: Any = None, k: int | None = None) -> list[NodeWithScore]:
        """The best pages for ``query`` and/or ``image`` (path, PIL image or bytes), best first."""
        hits = self._search.search(
            query,
            k=self.similarity_top_k if k is None else k,
            mode=self.mode,
            reranker=self.reranker,
            rerank_candidates=self.rerank_candidates,
            source=self.source,
            image=image,
            exhaustive=self.exhaustive,
            candidates=self.candidates,
            maxsim_device=self.maxsim_device,
        )
        return self._nodes(hits)

    def image_retrieve(self, image: Any, query_str: str = "") -> list[NodeWithScore]:
        """The pages closest to ``image`` (a path, ``PIL.Image.Image`` or encoded bytes), best first.

        ``query_str``'s words are fused in by BM25 in ``"hybrid"`` mode.

        Raises:
            ImageQueryError: the store's model embeds text only (the message names those that don't).
        """
        return self.search(query_str, image=image)

    async def aimage_retrieve(self, image: Any, query_str: str = "") -> list[NodeWithScore]:
        """Async :meth:`image_retrieve` (the search runs in a worker thread)."""
        return await asyncio.to_thread(self.search, query_str, image=image)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        image = query_bundle.image_path or None
        return self.search(query_bundle.query_str, image=image)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class LateInteractionNodeRetriever(PageNodeRetriever):
    """:class:`PageNodeRetriever` under its earlier name, searching by MaxSim alone (``mode="dense"``).

    Kept for code written before :class:`PageNodeRetriever`; the same class with ``mode``
    defaulting to ``"dense"``, so the score stays the MaxSim score::

        LateInteractionNodeRetriever(MultiVectorStore("index/"), ColEmbedEmbedding(), similarity_top_k=3)
    """

    def __init__(self, index: Any, embed_model: Any = None, *, mode: Mode = "dense", **options: Any) -> None:
        super().__init__(index, embed_model, mode=mode, **options)

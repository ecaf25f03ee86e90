"""LlamaIndex retriever: MaxSim search of a :class:`~pagesight.retrieval.multivector.MultiVectorStore`."""

from __future__ import annotations

import asyncio

from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from pagesight._checks import check_int
from pagesight.errors import ConfigurationError
from pagesight.integrations._convert import hit_metadata
from pagesight.integrations.llama_index._convert import hit_node
from pagesight.integrations.llama_index.colembed import ColEmbedEmbedding
from pagesight.models.base import LateInteractionEncoder
from pagesight.retrieval.multivector import MultiVectorStore

__all__ = ["LateInteractionNodeRetriever"]

# Kept out of the text an LLM or an embedder sees: a local file path is noise to both.
_HIDDEN_KEYS = ["image", "id", "text_source"]


class LateInteractionNodeRetriever(BaseRetriever):
    """Pages of a :class:`~pagesight.retrieval.multivector.MultiVectorStore` ranked by MaxSim, for LlamaIndex.

    The query is embedded token by token; the store takes its ``candidates`` best pages by the
    pooled (summary) vector, scores them exactly with MaxSim, and the ``similarity_top_k`` best
    come back as ``NodeWithScore``, best first, ``score`` = MaxSim (sum over query tokens of the
    best cosine with a page token; not bounded by 1).

    Nodes: a page with a rendered image comes back as an ``ImageNode`` (``image_path`` set, the
    page's text in ``text``), a text-only page as a ``TextNode``. ``ImageNode`` is a ``TextNode``,
    so text synthesizers (``RetrieverQueryEngine``) read the text as usual while multimodal ones
    find the page image. Node ids are the store's page ids; ``metadata`` holds ``source``,
    ``page`` and ``image`` (path or ``None``), with ``image`` and ``id`` hidden from the LLM and
    the embedder.

    Install:
        ``pip install "pagesight[llamaindex,chroma,offline]"``

    Instantiate::

        from pagesight.integrations import ColEmbedEmbedding, LateInteractionNodeRetriever
        from pagesight.retrieval.multivector import MultiVectorStore

        retriever = LateInteractionNodeRetriever(MultiVectorStore("index/"), ColEmbedEmbedding(),
                                                 similarity_top_k=3)

    Use::

        nodes = retriever.retrieve("what is the invoice total?")     # up to 3 NodeWithScore
        nodes[0].score, nodes[0].node.metadata["source"], nodes[0].node.metadata["page"]

        from llama_index.core.query_engine import RetrieverQueryEngine
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
        engine.query("what is the invoice total?")

    The query must be embedded with the model that built the store; another one raises
    :class:`~pagesight.errors.StoreMismatchError` naming both.
    """

    def __init__(
        self,
        store: MultiVectorStore,
        embed_model: ColEmbedEmbedding | None = None,
        *,
        encoder: LateInteractionEncoder | None = None,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        candidates: int = 100,
        exhaustive: bool = False,
        source: str | None = None,
        maxsim_device: str | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        """Describe the retriever; nothing loads or opens until the first query.

        Args:
            store: the store to search.
            embed_model: embeds the query; give this or ``encoder``.
            encoder: a framework-free late-interaction encoder, instead of ``embed_model``.
            similarity_top_k: how many pages to return.
            candidates: how many pages the summary-vector search proposes for exact MaxSim.
            exhaustive: score every stored page with MaxSim instead.
            source: only search the pages of this source (path or URL as indexed).
            maxsim_device: where MaxSim runs: ``None``/``"cpu"``, or ``"cuda"``/``"cuda:N"``.
            callback_manager: LlamaIndex callbacks.
            verbose: print retrieval steps.

        Raises:
            ConfigurationError: neither or both of ``embed_model`` and ``encoder``, or a count below 1.
        """
        query_encoder = embed_model.encoder if embed_model is not None else encoder
        if query_encoder is None or (embed_model is not None and encoder is not None):
            raise ConfigurationError(
                "give exactly one of `embed_model` (ColEmbedEmbedding) or `encoder` "
                "(a LateInteractionEncoder such as ColEmbedEncoder)"
            )
        check_int("similarity_top_k", similarity_top_k, least=1)
        check_int("candidates", candidates, least=1)
        self.store = store
        self.embed_model = embed_model
        self.encoder: LateInteractionEncoder = query_encoder
        self.similarity_top_k = similarity_top_k
        self.candidates = candidates
        self.exhaustive = exhaustive
        self.source = source
        self.maxsim_device = maxsim_device
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query_tokens = self.encoder.encode_queries([query_bundle.query_str])[0]
        hits = self.store.search(
            query_tokens,
            k=self.similarity_top_k,
            embedder=self.encoder.info,
            candidates=self.candidates,
            exhaustive=self.exhaustive,
            device=self.maxsim_device,
            source=self.source,
        )
        return [
            NodeWithScore(node=hit_node(hit, hit_metadata(hit, score=False), _HIDDEN_KEYS), score=hit.score)
            for hit in hits
        ]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)

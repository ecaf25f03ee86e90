"""A prebuilt LlamaIndex query engine: question -> pages -> any LLM -> answer citing pages.

Install::

    pip install "pagesight[llamaindex,chroma,offline]"     # plus llama-index-llms-ollama, ...

Use::

    from llama_index.llms.ollama import Ollama
    from pagesight.integrations.llama_index.query_engine import build_llamaindex_query_engine

    engine = build_llamaindex_query_engine(Ollama(model="llama3.2"), store="index/")
    response = engine.query("How do I cite R?")
    response.response                          # "Use citation(). [R-FAQ.pdf p.3]"
    response.source_nodes                      # NodeWithScore of the pages shown to the model, best first
    response.metadata["citations"]             # [{"source", "page", "image", "score"}]
    response.metadata["unmatched_citations"]   # citations of pages that were not retrieved
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle

from pagesight.errors import ConfigurationError
from pagesight.integrations._convert import hit_metadata
from pagesight.integrations.llama_index._convert import hit_node, node_hit, own_node_hit, with_hit
from pagesight.pipelines._images import DEFAULT_MAX_PIXELS, png_bytes
from pagesight.pipelines._retrieve import (
    check_options,
    plan_retrieval,
    rerank_hits,
    store_image_root,
)
from pagesight.pipelines.answer import resolve_citations
from pagesight.pipelines.prompt import Prompt, prompt_with_images
from pagesight.types import Hit

if TYPE_CHECKING:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever

    from pagesight.index import Index
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

__all__ = ["PageQueryEngine", "build_llamaindex_query_engine"]

logger = logging.getLogger(__name__)

# Kept out of the text an LLM or an embedder sees: paths, ids and scores are noise to both.
_HIDDEN_KEYS = ["image", "id", "score"]


def _node(hit: Hit, original: Any = None) -> NodeWithScore:
    """The page as a node (``ImageNode`` when it has an image, else ``TextNode``); a node from a
    retriever is copied with ``source/page/image/score/id`` added to its metadata."""
    if original is not None:
        return NodeWithScore(node=with_hit(original, hit, _HIDDEN_KEYS), score=hit.score)
    return NodeWithScore(node=hit_node(hit, hit_metadata(hit), _HIDDEN_KEYS), score=hit.score)


def _is_multimodal_llm(llm: Any) -> bool:
    from llama_index.core.multi_modal_llms.base import MultiModalLLM

    return isinstance(llm, MultiModalLLM)


def _is_ollama(llm: Any) -> bool:
    return type(llm).__module__.startswith("llama_index.llms.ollama")


def _ollama_vision(llm: Any) -> bool:
    """Whether a LlamaIndex ``Ollama`` LLM's model reports the ``vision`` capability (``/api/show``)."""
    try:
        capabilities = llm.client.show(llm.model).capabilities or []
    except Exception as e:  # any failure to ask means "not known to see"; the chat call reports errors
        logger.debug("could not read the capabilities of Ollama model %s: %s", getattr(llm, "model", "?"), e)
        return False
    return "vision" in capabilities


class PageQueryEngine(BaseQueryEngine):
    """Answers questions from retrieved pages with a LlamaIndex LLM, citing the pages.

    Build it with :func:`build_llamaindex_query_engine`, which checks the arguments.

    ``query(question)`` returns a ``Response`` (a ``StreamingResponse`` when ``streaming``; an
    ``AsyncStreamingResponse`` from ``aquery``) with ``response`` = the answer, ``source_nodes`` =
    the pages shown to the model, best first, and ``metadata`` = ``{"citations": [{"source", "page",
    "image", "score"}], "unmatched_citations": [...]}`` (for a streaming response, filled in once
    the answer has been read to its end).

    Example:
        >>> engine = build_llamaindex_query_engine(llm, store="index/")  # doctest: +SKIP
        >>> engine.query("How do I cite R?").metadata["citations"][0]["page"]  # doctest: +SKIP
        3
    """

    def __init__(
        self,
        llm: Any,
        *,
        retriever: BaseRetriever,
        postprocessor: BaseNodePostprocessor | None,
        reranker: Reranker | None,
        root: Path | None,
        k: int,
        rerank_candidates: int,
        images: bool | None,
        max_images: int,
        max_pixels: int,
        max_chars_per_page: int,
        streaming: bool,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        self.llm = llm
        self.retriever = retriever
        self.postprocessor = postprocessor
        self.reranker = reranker
        self.root = root
        self.k = k
        self.rerank_candidates = rerank_candidates
        self.images = images
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.max_chars_per_page = max_chars_per_page
        self.streaming = streaming
        self._style: tuple[bool, bool] | None = None  # (chat, images), decided on the first question
        self._lock = threading.Lock()
        super().__init__(callback_manager=callback_manager or getattr(llm, "callback_manager", None))

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    # -- how to talk to the model ----------------------------------------------------------------------

    def _decide_style(self) -> tuple[bool, bool]:
        """(use chat messages, attach page images), from the LLM's kind; asked once."""
        with self._lock:
            if self._style is None:
                multimodal = _is_multimodal_llm(self.llm)
                chat = multimodal or bool(getattr(self.llm.metadata, "is_chat_model", True))
                images = self.images
                if images is None:
                    images = (
                        multimodal
                        or bool(getattr(self.llm.metadata, "is_multi_modal", False))
                        or (_is_ollama(self.llm) and _ollama_vision(self.llm))
                    )
                elif images and not chat:
                    warnings.warn(
                        "`images=True` is ignored: this LLM is not a chat model, so it gets the prompt "
                        "as one string",
                        stacklevel=3,
                    )
                self._style = (chat, bool(images) and chat)
            return self._style

    def _prompt(self, question: str, hits: Sequence[Hit]) -> tuple[Prompt, Any]:
        """The prompt, and what the LLM gets: chat messages (with image blocks) or one string."""
        chat, images = self._decide_style()
        prompt, opened = prompt_with_images(
            question,
            hits,
            images=images,
            max_images=self.max_images,
            max_pixels=self.max_pixels,
            max_chars_per_page=self.max_chars_per_page,
        )
        if not chat:
            return prompt, prompt.plain()
        blocks: list[Any] = [TextBlock(text=prompt.user)]
        for img in opened:
            blocks.append(ImageBlock(image=png_bytes(img), image_mimetype="image/png"))
        messages = [
            ChatMessage(role=MessageRole.SYSTEM, content=prompt.system),
            ChatMessage(role=MessageRole.USER, blocks=blocks),
        ]
        return prompt, messages

    # -- retrieval -----------------------------------------------------------------------------------------

    def _select(self, query_bundle: QueryBundle, nodes: list[NodeWithScore]) -> list[NodeWithScore]:
        if self.postprocessor is not None:
            nodes = self.postprocessor.postprocess_nodes(nodes, query_bundle=query_bundle)
        pairs = [(node_hit(n, self.root), n) for n in nodes]
        if self.reranker is not None:
            by_id = {h.id: n for h, n in pairs}
            ranked = rerank_hits(self.reranker, query_bundle.query_str, [h for h, _ in pairs], self.k)
            pairs = [(h, by_id[h.id]) for h in ranked]
        return [_node(hit, n.node) for hit, n in pairs[: self.k]]

    def retrieve(self, query_bundle: QueryBundle | str) -> list[NodeWithScore]:
        """The pages the model is shown for a question, best first (reranked when a reranker is set)."""
        if isinstance(query_bundle, str):
            query_bundle = QueryBundle(query_bundle)
        return self._select(query_bundle, self.retriever.retrieve(query_bundle))

    async def aretrieve(self, query_bundle: QueryBundle | str) -> list[NodeWithScore]:
        """Async :meth:`retrieve` (searching and reranking run in a worker thread)."""
        if isinstance(query_bundle, str):
            query_bundle = QueryBundle(query_bundle)
        nodes = await self.retriever.aretrieve(query_bundle)
        return await asyncio.to_thread(self._select, query_bundle, nodes)

    # -- answering -----------------------------------------------------------------------------------------

    def _metadata(self, question: str, text: str, hits: list[Hit], into: dict[str, Any]) -> dict[str, Any]:
        result = resolve_citations(question, text, hits)
        into["citations"] = [asdict(c) for c in result.citations]
        into["unmatched_citations"] = result.unmatched_citations
        return into

    def _query(self, query_bundle: QueryBundle) -> Response | StreamingResponse:
        question = query_bundle.query_str
        nodes = self.retrieve(query_bundle)
        hits = [own_node_hit(n) for n in nodes]
        _, payload = self._prompt(question, hits)
        chat = isinstance(payload, list)
        if not self.streaming:
            text = self.llm.chat(payload).message.content if chat else self.llm.complete(payload).text
            text = text or ""
            return Response(text, source_nodes=nodes, metadata=self._metadata(question, text, hits, {}))
        metadata: dict[str, Any] = {"citations": [], "unmatched_citations": []}

        def pieces() -> Generator[str, None, None]:
            parts: list[str] = []
            stream = self.llm.stream_chat(payload) if chat else self.llm.stream_complete(payload)
            for r in stream:
                if r.delta:
                    parts.append(r.delta)
                    yield r.delta
            self._metadata(question, "".join(parts), hits, metadata)

        return StreamingResponse(pieces(), source_nodes=nodes, metadata=metadata)

    async def _aquery(self, query_bundle: QueryBundle) -> Response | AsyncStreamingResponse:
        question = query_bundle.query_str
        nodes = await self.aretrieve(query_bundle)
        hits = [own_node_hit(n) for n in nodes]
        _, payload = await asyncio.to_thread(self._prompt, question, hits)
        chat = isinstance(payload, list)
        if not self.streaming:
            if chat:
                text = (await self.llm.achat(payload)).message.content
            else:
                text = (await self.llm.acomplete(payload)).text
            text = text or ""
            return Response(text, source_nodes=nodes, metadata=self._metadata(question, text, hits, {}))
        metadata: dict[str, Any] = {"citations": [], "unmatched_citations": []}

        async def pieces() -> AsyncGenerator[str, None]:
            parts: list[str] = []
            stream = await (self.llm.astream_chat(payload) if chat else self.llm.astream_complete(payload))
            async for r in stream:
                if r.delta:
                    parts.append(r.delta)
                    yield r.delta
            self._metadata(question, "".join(parts), hits, metadata)

        return AsyncStreamingResponse(pieces(), source_nodes=nodes, metadata=metadata)


def _settings_llm() -> Any:
    from llama_index.core import Settings

    try:
        return Settings.llm
    except (ImportError, ValueError) as e:
        raise ConfigurationError(
            f"no `llm` given and LlamaIndex's Settings.llm is not usable ({e}); pass llm=..., for example "
            'llama_index.llms.ollama.Ollama(model="llama3.2")'
        ) from e


def build_llamaindex_query_engine(
    llm: Any = None,
    *,
    store: Index | PageStore | MultiVectorStore | str | Path | None = None,
    embedder: Any = None,
    retriever: Any = None,
    reranker: Any = None,
    k: int = 5,
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
    images: bool | None = None,
    max_images: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_chars_per_page: int = 3000,
    rerank_candidates: int = 20,
    trust_remote_code: bool = False,
    streaming: bool = False,
) -> PageQueryEngine:
    """A LlamaIndex query engine that answers from retrieved pages with ``llm``, citing the pages.

    The prompt is pagesight's (:func:`pagesight.pipelines.prompt.build_prompt`): each page's text
    under its label ``[<file> p.<N>]``, the model told to cite those labels. A chat model
    (``llm.metadata.is_chat_model``, and every ``MultiModalLLM``) gets a system and a user
    ``ChatMessage``, page images as ``ImageBlock`` s (PNG bytes) in the user message; a completion
    model gets the prompt as one string and no images.

    Args:
        llm: any LlamaIndex ``LLM`` or ``MultiModalLLM``; ``None`` takes ``Settings.llm``.
        store: a :class:`pagesight.Index` (what :meth:`pagesight.Index.as_query_engine` passes), a
            :class:`~pagesight.retrieval.store.PageStore` /
            :class:`~pagesight.retrieval.multivector.MultiVectorStore`, a store folder or a Chroma
            server URL, searched with :class:`~pagesight.integrations.llama_index.PageNodeRetriever`
            (opened on the first question). With ``retriever`` it only resolves relative image paths.
        embedder: embeds questions for ``store``: ``None`` (the embedder the store records),
            pagesight's ``MatryoshkaEmbedding`` / ``VLEmbedding`` / ``ColEmbedEmbedding``, an encoder
            object, or a model name. Another framework's embeddings: use ``retriever=``.
        retriever: any LlamaIndex ``BaseRetriever`` (``index.as_retriever()``,
            ``PageNodeRetriever``, ...); takes precedence over ``store``. Its nodes are the
            pages: ``metadata["source"]`` (else ``file_path`` / ``file_name``, else ``"document"``),
            the page number from ``page_label`` when it is a number (what LlamaIndex's PDF readers
            write), else ``page`` read as 1-based, else 1; the image from ``metadata["image"]`` or an
            ``ImageNode``'s ``image_path``; the score from the ``NodeWithScore``. The first ``k``
            (after reranking) are used.
        reranker: ``None``; a LlamaIndex ``BaseNodePostprocessor`` (pagesight's
            ``VLRerankPostprocessor``, ...) applied to the retrieved nodes; or a
            :class:`~pagesight.models.rerank.Reranker` or reranker name (``"nanoranker"``), applied
            inside the store search or to the retriever's nodes. With a store, the reranker sees
            ``rerank_candidates`` pages; with a retriever, what the retriever returns.
        k: pages shown to the model.
        mode: store search: ``"hybrid"`` (dense + BM25), ``"dense"`` or ``"bm25"``.
        images: attach page images (up to ``max_images``). ``None``: when the model can see them —
            LlamaIndex 0.14's ``LLMMetadata`` has no multimodal flag, so this means a
            ``MultiModalLLM``, an LLM whose ``metadata`` has a true ``is_multi_modal``, or a
            LlamaIndex ``Ollama`` LLM whose model reports the ``vision`` capability (asked once with
            ``/api/show``).
        max_images: most images attached.
        max_pixels: each attached image is scaled down (aspect kept) to at most this many pixels.
        max_chars_per_page: page text in the prompt is cut to this many characters.
        rerank_candidates: pages a store search hands the reranker (at least ``k`` are).
        trust_remote_code: allow the models' own code (NVIDIA embedders and rerankers need it).
        streaming: ``query`` returns a ``StreamingResponse`` (``aquery``: ``AsyncStreamingResponse``)
            whose ``response_gen`` yields the answer as the model writes it.

    Returns:
        A :class:`PageQueryEngine`. Source nodes are ``ImageNode`` s (``image_path`` = the page image)
        for pages with an image, else ``TextNode`` s; ``metadata`` holds ``source``, ``page``,
        ``image``, ``score`` and ``id`` (the last three hidden from the LLM and embedder).

    Raises:
        ConfigurationError: neither ``retriever`` nor ``store``; an ``llm``, ``retriever``,
            ``reranker`` or ``embedder`` of the wrong kind; an option out of range; a store folder
            that does not exist; no ``llm`` and no usable ``Settings.llm``.

    Example:
        >>> from llama_index.llms.ollama import Ollama  # doctest: +SKIP
        >>> engine = build_llamaindex_query_engine(Ollama(model="qwen2.5vl:3b"), store="index/",
        ...                                        reranker="nanoranker")  # doctest: +SKIP
        >>> str(engine.query("What is the invoice total?"))  # doctest: +SKIP
        'The total is 1,250 euros. [invoice.pdf p.2]'
    """
    from llama_index.core.base.llms.base import BaseLLM
    from llama_index.core.multi_modal_llms.base import MultiModalLLM
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.retrievers import BaseRetriever

    check_options(
        k=k,
        max_images=max_images,
        max_pixels=max_pixels,
        max_chars_per_page=max_chars_per_page,
        rerank_candidates=rerank_candidates,
    )
    if llm is None:
        llm = _settings_llm()
    if not isinstance(llm, (BaseLLM, MultiModalLLM)):
        raise ConfigurationError(f"`llm` must be a LlamaIndex LLM or MultiModalLLM, got {type(llm).__name__}")
    if retriever is not None and not isinstance(retriever, BaseRetriever):
        raise ConfigurationError(
            f"`retriever` must be a LlamaIndex BaseRetriever, got {type(retriever).__name__}"
        )
    if images is not None and not isinstance(images, bool):
        raise ConfigurationError(f"`images` must be True, False or None, got {images!r}")
    postprocessor = reranker if isinstance(reranker, BaseNodePostprocessor) else None
    plan, pagesight_reranker = plan_retrieval(
        store,
        embedder,
        retriever,
        reranker,
        framework_reranker=postprocessor is not None,
        mode=mode,
        k=k,
        rerank_candidates=rerank_candidates,
        trust_remote_code=trust_remote_code,
    )
    root = store_image_root(store) if retriever is not None else None
    if plan is not None:  # the store search: pagesight's retriever, reranking inside the search
        from pagesight.integrations.llama_index.retrievers import PageNodeRetriever

        retriever = PageNodeRetriever(
            plan.store,
            plan.embedder,
            similarity_top_k=max(k, rerank_candidates) if postprocessor is not None else k,
            mode=plan.mode,
            reranker=plan.reranker if plan.reranker is not None else "none",
            rerank_candidates=plan.rerank_candidates,
            trust_remote_code=plan.trust_remote_code,
        )
        pagesight_reranker = None
    return PageQueryEngine(
        llm,
        retriever=retriever,
        postprocessor=postprocessor,
        reranker=pagesight_reranker,
        root=root,
        k=k,
        rerank_candidates=rerank_candidates,
        images=images,
        max_images=max_images,
        max_pixels=max_pixels,
        max_chars_per_page=max_chars_per_page,
        streaming=streaming,
    )

"""A prebuilt LangChain (LCEL) chain: question -> pages -> any chat model -> answer citing pages.

Install::

    pip install "pagesight[langchain,chroma,offline]"       # plus langchain-ollama, langchain-openai, ...

Use::

    from langchain_ollama import ChatOllama
    from pagesight.integrations.langchain.chain import build_langchain_chain

    chain = build_langchain_chain(ChatOllama(model="llama3.2"), store="index/")
    out = chain.invoke("How do I cite R?")
    out["answer"]                 # "Use citation(). [R-FAQ.pdf p.3]"
    out["citations"]              # [{"source": ".../R-FAQ.pdf", "page": 3, "image": ".../p3.png",
                                  #   "score": 0.71}]
    out["unmatched_citations"]    # citations of pages that were not retrieved (invented sources)
    out["retrieved"]              # the Documents shown to the model, best first

    for chunk in chain.stream("How do I cite R?"):   # {"question"}, {"answer": piece}..., then
        print(chunk.get("answer", ""), end="")        # {"citations", "unmatched_citations", "retrieved"}
"""

from __future__ import annotations

import asyncio
import base64
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pagesight._deps import require
from pagesight.errors import ConfigurationError
from pagesight.integrations.langchain._convert import document_hit, hit_document, own_document_hit
from pagesight.pipelines._images import DEFAULT_MAX_PIXELS, png_bytes
from pagesight.pipelines._retrieve import (
    check_options,
    plan_retrieval,
    rerank_hits,
    store_image_root,
)
from pagesight.pipelines.answer import resolve_citations
from pagesight.pipelines.prompt import prompt_with_images
from pagesight.types import Hit

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.runnables import Runnable, RunnableConfig

    from pagesight.index import Index
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

__all__ = ["build_langchain_chain"]


def _question(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("question")
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f'the chain takes a question: a non-empty str or {{"question": str}}, got {value!r}'
        )
    return value


def _is_plain_llm(llm: Any) -> bool:
    """Whether ``llm`` (or the model inside a ``.bind(...)`` / ``.with_config(...)``) is a text-in LLM."""
    from langchain_core.language_models import BaseChatModel, BaseLLM
    from langchain_core.runnables import RunnableBinding

    while isinstance(llm, RunnableBinding):
        llm = llm.bound
    return isinstance(llm, BaseLLM) and not isinstance(llm, BaseChatModel)


class _Pages:
    """Question -> the ``k`` pages shown to the model, as (hit, Document) pairs, best first."""

    def __init__(
        self,
        *,
        retriever: Any,
        compressor: Any,
        model_reranker: Reranker | None,
        root: Path | None,
        k: int,
        rerank_candidates: int,
    ) -> None:
        self.retriever = retriever
        self.compressor = compressor
        self.model_reranker = model_reranker
        self.root = root
        self.k = k
        self.rerank_candidates = rerank_candidates

    def _hits(self, docs: Sequence[Document]) -> list[tuple[Hit, Document]]:
        return [(document_hit(d, self.root), d) for d in docs]

    def _finish(self, question: str, pairs: list[tuple[Hit, Document]]) -> list[Document]:
        if self.model_reranker is not None:
            ranked = rerank_hits(self.model_reranker, question, [h for h, _ in pairs], self.k)
            by_id = {h.id: d for h, d in pairs}
            pairs = [(h, by_id[h.id]) for h in ranked]
        return [hit_document(h, d) for h, d in pairs[: self.k]]

    def get(self, inputs: dict[str, Any], config: RunnableConfig) -> list[Document]:
        question = inputs["question"]
        callbacks = config.get("callbacks")
        docs = self.retriever.invoke(question, config)
        if self.compressor is not None:
            docs = self.compressor.compress_documents(docs, question, callbacks=callbacks)
        return self._finish(question, self._hits(docs))

    async def aget(self, inputs: dict[str, Any], config: RunnableConfig) -> list[Document]:
        question = inputs["question"]
        callbacks = config.get("callbacks")
        docs = await self.retriever.ainvoke(question, config)
        if self.compressor is not None:
            docs = await self.compressor.acompress_documents(docs, question, callbacks=callbacks)
        pairs = self._hits(docs)
        return await asyncio.to_thread(self._finish, question, pairs)


def _hits_of(docs: Sequence[Document]) -> list[Hit]:
    """Pages back from the chain's own Documents (their metadata is complete and images absolute)."""
    return [own_document_hit(d) for d in docs]


class _PromptMaker:
    def __init__(
        self, *, plain: bool, images: bool, max_images: int, max_pixels: int, max_chars: int
    ) -> None:
        self.plain = plain
        self.images = images
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.max_chars = max_chars

    def __call__(self, inputs: dict[str, Any]) -> Any:
        from langchain_core.messages import HumanMessage, SystemMessage

        prompt, opened = prompt_with_images(
            inputs["question"],
            _hits_of(inputs["retrieved"]),
            images=self.images,
            max_images=self.max_images,
            max_pixels=self.max_pixels,
            max_chars_per_page=self.max_chars,
        )
        if self.plain:
            return prompt.plain()
        if not opened:
            return [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        content: list[str | dict[str, Any]] = [{"type": "text", "text": prompt.user}]
        for img in opened:
            data = base64.b64encode(png_bytes(img)).decode("ascii")
            content.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}})
        return [SystemMessage(prompt.system), HumanMessage(content=content)]


def _final(question: str, text: str, docs: list[Document]) -> dict[str, Any]:
    result = resolve_citations(question, text, _hits_of(docs))
    return {
        "citations": [asdict(c) for c in result.citations],
        "unmatched_citations": result.unmatched_citations,
        "retrieved": docs,
    }


class _Citer:
    """Passes the answer through piece by piece, then adds the citations and the retrieved pages."""

    def __init__(self) -> None:
        self.question = ""
        self.docs: list[Document] = []
        self.parts: list[str] = []

    def take(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        from langchain_core.runnables.utils import AddableDict

        out: list[dict[str, Any]] = []
        if "question" in chunk:
            self.question = chunk["question"]
            out.append(AddableDict(question=self.question))
        if "retrieved" in chunk:
            self.docs = chunk["retrieved"]
        piece = chunk.get("answer")
        if piece:
            self.parts.append(piece)
            out.append(AddableDict(answer=piece))
        return out

    def end(self) -> list[dict[str, Any]]:
        from langchain_core.runnables.utils import AddableDict

        out: list[dict[str, Any]] = [] if self.parts else [AddableDict(answer="")]
        return [*out, AddableDict(_final(self.question, "".join(self.parts), self.docs))]


def _cite(chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    citer = _Citer()
    for chunk in chunks:
        yield from citer.take(chunk)
    yield from citer.end()


async def _acite(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    citer = _Citer()
    async for chunk in chunks:
        for out in citer.take(chunk):
            yield out
    for out in citer.end():
        yield out


def build_langchain_chain(
    llm: Any,
    *,
    store: Index | PageStore | MultiVectorStore | str | Path | None = None,
    embedder: Any = None,
    retriever: Any = None,
    reranker: Any = None,
    k: int = 5,
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
    images: bool = False,
    max_images: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_chars_per_page: int = 3000,
    rerank_candidates: int = 20,
    trust_remote_code: bool = False,
) -> Runnable[Any, dict[str, Any]]:
    """An LCEL chain that answers a question from retrieved pages with ``llm``, citing the pages.

    The chain is ``question -> retrieve_pages -> page_prompt -> llm -> StrOutputParser -> cite_pages``
    (run name ``"pagesight"``), so ``invoke``, ``batch``, ``ainvoke``, ``stream`` and ``astream`` all
    work and every step shows in LangChain tracing. The prompt is pagesight's
    (:func:`pagesight.pipelines.prompt.build_prompt`): each page's text under its label
    ``[<file> p.<N>]``, the model told to cite those labels.

    Args:
        llm: any LangChain chat model (``ChatOllama``, ``ChatOpenAI``, ...; also wrapped in
            ``.bind(...)``): it gets a system message and a user message. A plain text LLM
            (``BaseLLM``, e.g. ``OllamaLLM``) gets the same prompt as one string
            (:meth:`~pagesight.pipelines.prompt.Prompt.plain`) and no images.
        store: a :class:`pagesight.Index` (what :meth:`pagesight.Index.as_chain` passes), a
            :class:`~pagesight.retrieval.store.PageStore` /
            :class:`~pagesight.retrieval.multivector.MultiVectorStore`, a store folder or a
            Chroma server URL, searched with
            :class:`~pagesight.integrations.langchain.PageRetriever` (opened on the first
            question). With ``retriever`` it only resolves relative ``metadata["image"]`` paths.
        embedder: embeds questions for ``store``: ``None`` (the embedder the store records),
            pagesight's ``MatryoshkaEmbeddings`` / ``VLEmbeddings`` / ``ColEmbedEmbeddings``, an
            encoder object, or a model name. Another framework's embeddings: use ``retriever=``.
        retriever: any LangChain ``BaseRetriever``; takes precedence over ``store``. Its Documents
            are the pages: ``metadata["source"]`` (default ``"document"``), the page number from
            ``page_label`` when it is a number, else ``page`` read as 1-based (a Document that also
            has a non-numeric ``page_label`` comes from a 0-based loader such as ``PyPDFLoader``:
            1 is added; ``PyMuPDFLoader``'s 0-based ``page`` without a label cites one page low),
            else 1; ``image`` and ``score`` when present. The first ``k`` (after reranking) are used.
        reranker: ``None``; a LangChain ``BaseDocumentCompressor`` (pagesight's ``VLReranker``,
            ...) applied to the retrieved Documents, ``score`` becoming its ``relevance_score``;
            or a :class:`~pagesight.models.rerank.Reranker` or reranker name (``"nanoranker"``,
            ``"llama-nemotron-rerank-vl-1b-v2"``), applied inside the store search or to the
            retriever's Documents. With a store, the reranker sees ``rerank_candidates`` pages;
            with a retriever, what the retriever returns (set its own ``k``).
        k: pages shown to the model.
        mode: store search: ``"hybrid"`` (dense + BM25), ``"dense"`` or ``"bm25"``.
        images: attach page images to the user message (vision chat models): up to ``max_images``
            of the shown pages that have one, as OpenAI-style ``image_url`` data-URL blocks
            (``ChatOllama`` sends them as the message's ``images``).
        max_images: most images attached.
        max_pixels: each attached image is scaled down (aspect kept) to at most this many pixels.
        max_chars_per_page: page text in the prompt is cut to this many characters.
        rerank_candidates: pages a store search hands the reranker (at least ``k`` are).
        trust_remote_code: allow the models' own code (NVIDIA embedders and rerankers need it).

    Returns:
        A ``Runnable`` taking a question (``str`` or ``{"question": str}``) and returning
        ``{"question", "answer", "citations": [{"source", "page", "image", "score"}],
        "unmatched_citations": ["[<file> p.<N>]", ...], "retrieved": [Document, ...]}``;
        ``retrieved`` are the pages shown to the model, best first, with ``metadata`` ``source``,
        ``page``, ``image``, ``score`` and ``id``. ``stream`` yields ``{"question"}``, then
        ``{"answer": piece}`` as the model writes, then one chunk with ``citations``,
        ``unmatched_citations`` and ``retrieved``; adding the chunks up gives ``invoke``'s result.

    Raises:
        ConfigurationError: neither ``retriever`` nor ``store``; a ``retriever``, ``reranker`` or
            ``embedder`` of the wrong kind; an option out of range; a store folder that does not
            exist.
        MissingDependencyError: ``langchain-core`` is not installed.

    Example:
        >>> chain = build_langchain_chain(ChatOllama(model="qwen2.5vl:3b"), store="index/",
        ...                               images=True, reranker="nanoranker")  # doctest: +SKIP
        >>> chain.invoke({"question": "What is the invoice total?"})["citations"][0]["page"]  # doctest: +SKIP
        2
    """
    require("langchain_core", "langchain")
    from langchain_core.documents import BaseDocumentCompressor
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda, RunnablePassthrough

    check_options(
        k=k,
        max_images=max_images,
        max_pixels=max_pixels,
        max_chars_per_page=max_chars_per_page,
        rerank_candidates=rerank_candidates,
    )
    if not isinstance(llm, Runnable):
        raise ConfigurationError(
            f"`llm` must be a LangChain chat model or LLM (a Runnable), got {type(llm).__name__}"
        )
    if retriever is not None and not isinstance(retriever, BaseRetriever):
        raise ConfigurationError(
            f"`retriever` must be a LangChain BaseRetriever, got {type(retriever).__name__}"
        )
    compressor = reranker if isinstance(reranker, BaseDocumentCompressor) else None
    plan, pagesight_reranker = plan_retrieval(
        store,
        embedder,
        retriever,
        reranker,
        framework_reranker=compressor is not None,
        mode=mode,
        k=k,
        rerank_candidates=rerank_candidates,
        trust_remote_code=trust_remote_code,
    )
    root = store_image_root(store) if retriever is not None else None
    if plan is not None:  # the store search: pagesight's retriever, reranking inside the search
        from pagesight.integrations.langchain.retrievers import PageRetriever

        retriever = PageRetriever(
            store=plan.store,
            embeddings=plan.embedder,
            k=max(k, rerank_candidates) if compressor is not None else k,
            mode=plan.mode,
            reranker=plan.reranker if plan.reranker is not None else "none",
            rerank_candidates=plan.rerank_candidates,
            trust_remote_code=plan.trust_remote_code,
        )
        pagesight_reranker = None
    plain = _is_plain_llm(llm)
    if plain and images:
        warnings.warn(
            "`images=True` is ignored: a plain text LLM gets the prompt as one string; use a chat model",
            stacklevel=2,
        )
    pages = _Pages(
        retriever=retriever,
        compressor=compressor,
        model_reranker=pagesight_reranker,
        root=root,
        k=k,
        rerank_candidates=rerank_candidates,
    )
    make_prompt = _PromptMaker(
        plain=plain,
        images=images and not plain,
        max_images=max_images,
        max_pixels=max_pixels,
        max_chars=max_chars_per_page,
    )
    generate = itemgetter("prompt") | llm | StrOutputParser()
    retrieve = RunnableLambda(pages.get, afunc=pages.aget, name="retrieve_pages")
    chain: Runnable[Any, dict[str, Any]] = (
        RunnableLambda(lambda value: {"question": _question(value)}, name="question")
        | RunnablePassthrough.assign(retrieved=retrieve)
        | RunnablePassthrough.assign(prompt=RunnableLambda(make_prompt, name="page_prompt"))
        | RunnablePassthrough.assign(answer=generate)
        | RunnableGenerator(_cite, _acite, name="cite_pages")
    )
    return chain.with_config(run_name="pagesight")

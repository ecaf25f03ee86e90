"""Pages for the prebuilt LangChain chain and LlamaIndex query engine, without framework imports.

Both builders take the same retrieval arguments (a store with an embedder, or a framework
retriever, and an optional reranker); this module turns the framework-free ones into pages:

- :class:`StorePlan` records the store search a builder hands to its framework's page retriever
  (:class:`~pagesight.integrations.langchain.PageRetriever`,
  :class:`~pagesight.integrations.llama_index.PageNodeRetriever`), checked but opened nowhere;
- :func:`query_encoder` and :func:`model_reranker` turn ``embedder=`` and ``reranker=`` into the
  encoder and :class:`~pagesight.models.rerank.Reranker` objects the searcher uses;
- :func:`plan_retrieval` decides what a builder retrieves with, and :func:`rerank_hits` reranks
  pages with pagesight's own reranker.

Reading framework documents as pages (``page_hit``, ``hit_metadata``, ...) lives in
:mod:`pagesight.integrations._convert`; the names are re-exported here.

Example::

    plan, reranker = plan_retrieval("index/", None, None, None, framework_reranker=False,
                                    mode="hybrid", k=5, rerank_candidates=20, trust_remote_code=False)
    plan.store, plan.mode                                   # "index/", "hybrid": nothing opened
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError
from pagesight.integrations._convert import (
    hit_metadata,
    metadata_hit,
    page_hit,
    page_number,
    source_of,
)
from pagesight.types import Hit

if TYPE_CHECKING:
    from pagesight.index import Index
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.search import Mode
    from pagesight.retrieval.store import PageStore

__all__ = [
    "StorePlan",
    "check_embedder",
    "check_options",
    "hit_metadata",
    "metadata_hit",
    "model_reranker",
    "page_hit",
    "plan_retrieval",
    "page_number",
    "query_encoder",
    "rerank_hits",
    "source_of",
    "store_image_root",
]


def check_options(
    *, k: int, max_images: int, max_pixels: int, max_chars_per_page: int, rerank_candidates: int
) -> None:
    """Refuse option values no chain can use, naming the option.

    Raises:
        ConfigurationError: an option is out of range.
    """
    check_int("k", k, least=1)
    check_int("max_images", max_images, least=0)
    check_int("max_pixels", max_pixels, least=1)
    check_int("max_chars_per_page", max_chars_per_page, least=1)
    check_int("rerank_candidates", rerank_candidates, least=1)


def _is_encoder(obj: Any) -> bool:
    return hasattr(obj, "info") and callable(getattr(obj, "encode_queries", None))


def query_encoder(embedder: Any, store: PageStore | MultiVectorStore, *, trust_remote_code: bool) -> Any:
    """The encoder that embeds questions for ``store``.

    Args:
        embedder: ``None`` (the embedder the store records), one of pagesight's LangChain or
            LlamaIndex embedding classes (``MatryoshkaEmbeddings``, ``VLEmbedding``,
            ``ColEmbedEmbeddings``, ... : their ``encoder`` is used), a framework-free encoder
            (``MatryoshkaEncoder``, ``VLEncoder``, ``ColEmbedEncoder``), or a model alias, Hugging
            Face id or folder (built with the model's default options).
        store: the store to search.
        trust_remote_code: allow the model's own code (NVIDIA models need it).

    Raises:
        ConfigurationError: ``embedder`` is none of these (another framework's embeddings: pass
            ``retriever=`` instead), or the store is empty and ``embedder`` is ``None``.
    """
    if embedder is None:
        from pagesight.pipelines.stores import store_encoder

        return store_encoder(store, trust_remote_code=trust_remote_code)
    check_embedder(embedder)
    if isinstance(embedder, str):
        from pagesight.profiles import page_encoder

        return page_encoder(embedder, trust_remote_code=trust_remote_code)
    inner = getattr(embedder, "encoder", None)
    return inner if _is_encoder(inner) else embedder


def check_embedder(embedder: Any) -> None:
    """Refuse an ``embedder`` that :func:`query_encoder` cannot use (cheap: builds nothing).

    Raises:
        ConfigurationError: ``embedder`` is not ``None``, a model name, an encoder or a pagesight
            embeddings class.
    """
    if embedder is None or (isinstance(embedder, str) and embedder.strip()):
        return
    if _is_encoder(embedder) or _is_encoder(getattr(embedder, "encoder", None)):
        return
    raise ConfigurationError(
        f"`embedder` must be None (the store's own embedder), a pagesight embeddings class, an encoder "
        f"or a model name, got {type(embedder).__name__}; to search with another framework's "
        "embeddings, pass `retriever=` (for example vector_store.as_retriever()) instead of `store=`"
    )


def model_reranker(reranker: Any, *, trust_remote_code: bool) -> Reranker | None:
    """``None``, or the :class:`~pagesight.models.rerank.Reranker` that ``reranker`` names or is.

    Framework rerankers (LangChain compressors, LlamaIndex postprocessors) are the builders'
    business; anything else raises.

    Raises:
        ConfigurationError: ``reranker`` is not ``None``, a string or a ``Reranker``.
    """
    if reranker is None:
        return None
    from pagesight.models.rerank import Reranker

    if isinstance(reranker, Reranker):
        return reranker
    if isinstance(reranker, str):
        return Reranker(reranker, trust_remote_code=trust_remote_code)
    raise ConfigurationError(
        f"`reranker` must be a reranker model name, a pagesight Reranker or the framework's reranker "
        f"(LangChain BaseDocumentCompressor, LlamaIndex BaseNodePostprocessor), got {type(reranker).__name__}"
    )


def _check_store(store: Any) -> None:
    from pagesight.index import Index
    from pagesight.pipelines.stores import is_store_url

    if isinstance(store, Index):
        return
    if isinstance(store, (str, Path)):
        if not is_store_url(store) and not Path(store).is_dir():
            raise ConfigurationError(
                f"no store at {store}; create one with: pagesight index SOURCES... --store {store}"
            )
        return
    if not hasattr(store, "search") or not hasattr(store, "image_dir"):
        raise ConfigurationError(
            "`store` must be an Index, a PageStore, a MultiVectorStore, a store folder or a Chroma "
            f"server URL, got {type(store).__name__}"
        )


@dataclass(frozen=True)
class StorePlan:
    """A store search a builder hands to its framework's page retriever (nothing opened yet).

    Attributes:
        store: an :class:`~pagesight.Index`, a :class:`~pagesight.retrieval.store.PageStore`, a
            :class:`~pagesight.retrieval.multivector.MultiVectorStore`, a store folder or a Chroma
            server URL.
        embedder: see :func:`query_encoder` (ignored in ``"bm25"`` mode).
        mode: ``"hybrid"``, ``"dense"`` or ``"bm25"``.
        reranker: a reranker applied inside the search, or ``None`` (``"none"`` for the retriever).
        rerank_candidates: pages the reranker sees.
        trust_remote_code: allow the models' own code.
    """

    store: Any
    embedder: Any
    mode: Mode
    reranker: Reranker | None
    rerank_candidates: int
    trust_remote_code: bool

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ("hybrid", "dense", "bm25"))
        _check_store(self.store)
        check_embedder(self.embedder)


def plan_retrieval(
    store: Any,
    embedder: Any,
    retriever: Any,
    reranker: Any,
    *,
    framework_reranker: bool,
    mode: str,
    k: int,
    rerank_candidates: int,
    trust_remote_code: bool,
) -> tuple[StorePlan | None, Reranker | None]:
    """What a builder retrieves with: the store search (``None`` when ``retriever`` does it) and
    pagesight's own reranker (``None`` when ``reranker`` is the framework's own reranker or absent).

    With a store, the reranker is applied inside the search (it is the plan's ``reranker``); with a
    ``retriever``, the builder applies it to what the retriever returns.

    An ``embedder`` given beside a ``retriever`` is ignored with a warning.

    Raises:
        ConfigurationError: neither ``store`` nor ``retriever`` is given.
    """
    if retriever is None and store is None:
        raise ConfigurationError("give `store=` (a pagesight store or its folder) or `retriever=`")
    model = None if framework_reranker else model_reranker(reranker, trust_remote_code=trust_remote_code)
    if retriever is not None:
        if embedder is not None:
            warnings.warn("`embedder` is ignored: the retriever embeds its own queries", stacklevel=3)
        return None, model
    plan = StorePlan(
        store,
        embedder,
        mode=mode,  # type: ignore[arg-type]
        reranker=model,
        rerank_candidates=max(k, rerank_candidates),
        trust_remote_code=trust_remote_code,
    )
    return plan, model


def store_image_root(store: Index | PageStore | MultiVectorStore | str | Path | None) -> Path | None:
    """The folder relative ``image`` paths point into: the store's image folder (``None``: no store)."""
    from pagesight.index import Index

    if store is None:
        return None
    if isinstance(store, Index):
        store = store.location  # a folder's default image folder, or a server URL: no images here
    if isinstance(store, (str, Path)):
        from pagesight.integrations._encoder import image_root
        from pagesight.pipelines.stores import is_store_url

        return None if is_store_url(store) else image_root(store)
    return Path(store.image_dir)


def rerank_hits(reranker: Reranker, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The ``k`` best of ``hits`` by ``reranker``, best first, ``score`` = the reranker's relevance."""
    from pagesight.models.rerank import RerankCandidate

    if not hits:
        return []
    candidates = [RerankCandidate(text=h.text, image=h.image, source=h.source, page=h.page) for h in hits]
    ranked = reranker.rerank(question, candidates, top_n=k)
    return [replace(hits[r.index], score=float(r.score)) for r in ranked]

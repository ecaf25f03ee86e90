"""What both frameworks' page retrievers search with, without framework imports.

:class:`IndexSearch` holds an :class:`~pagesight.Index` (given, or opened on the first query
from a store or a folder) and searches it with :meth:`pagesight.Index.searcher`, so a retriever
searches exactly as ``Index.search`` and ``pagesight search`` do: any store kind (dense text,
dense vision-language, late interaction), any mode, an optional reranker, a source filter and
image queries. :class:`~pagesight.integrations.langchain.PageRetriever` and
:class:`~pagesight.integrations.llama_index.PageNodeRetriever` turn its hits into their
framework's objects.

Example::

    search = IndexSearch("index/", None)                        # opens nothing yet
    hits = search.search("how do I cite R?", k=5, mode="hybrid")   # list[Hit], best first
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError
from pagesight.types import Hit

if TYPE_CHECKING:
    from pagesight.index import Index
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.search import Mode

__all__ = ["MODES", "IndexSearch", "check_search_options", "check_where", "pagesight_reranker"]

MODES = ("hybrid", "dense", "bm25")


def check_search_options(*, k: int, mode: str, rerank_candidates: int, candidates: int | None) -> None:
    """Refuse option values no search can use, naming the option.

    Raises:
        ConfigurationError: an option is out of range or an unknown mode.
    """
    check_int("k", k, least=1)
    check_choice("mode", mode, MODES)
    check_int("rerank_candidates", rerank_candidates, least=1)
    check_int("candidates", candidates, least=1, optional=True)


def pagesight_reranker(reranker: Any) -> str | Reranker | None:
    """``reranker`` as :meth:`pagesight.Index.reranker` takes it.

    ``None``, ``"none"``, a reranker name and a :class:`~pagesight.models.rerank.Reranker` stay as
    they are; pagesight's framework rerankers (``VLReranker``, ``VLRerankPostprocessor``) give
    their :class:`~pagesight.models.rerank.Reranker` (their ``top_n`` is not used: ``k`` is).

    Raises:
        ConfigurationError: anything else.
    """
    if reranker is None or isinstance(reranker, str):
        return reranker
    if callable(getattr(reranker, "rerank", None)):
        return reranker
    inner = getattr(reranker, "reranker", None)
    if callable(getattr(inner, "rerank", None)):
        return inner
    raise ConfigurationError(
        "`reranker` must be a reranker name, a pagesight Reranker, VLReranker or VLRerankPostprocessor, "
        f"got {type(reranker).__name__}"
    )


def _is_index(obj: Any) -> bool:
    from pagesight.index import Index

    return isinstance(obj, Index)


def check_where(where: Any) -> None:
    """Refuse what is neither an :class:`~pagesight.Index`, a store, a store folder nor a server URL.

    Raises:
        ConfigurationError: ``where`` is a folder that holds no store, or not a store at all.
    """
    if where is None:
        raise ConfigurationError("give the index to search: an Index, a store, or a store folder")
    if _is_index(where):
        return
    if isinstance(where, (str, Path)):
        from pagesight.pipelines.stores import is_store_url

        if not is_store_url(str(where)) and not Path(where).is_dir():
            raise ConfigurationError(
                f"no store at {where}; create one with: pagesight index SOURCES... --store {where}"
            )
        return
    if not hasattr(where, "search") or not hasattr(where, "image_dir"):
        raise ConfigurationError(
            "the index to search must be a pagesight Index, a PageStore, a MultiVectorStore, a store "
            f"folder or a Chroma server URL, got {type(where).__name__}"
        )


class IndexSearch:
    """Search an index; a store or folder opens, and the query encoder is built, on the first query.

    Args:
        where: a :class:`~pagesight.Index`, a :class:`~pagesight.retrieval.store.PageStore`, a
            :class:`~pagesight.retrieval.multivector.MultiVectorStore`, a store folder or a Chroma
            server URL.
        embedder: embeds queries: ``None`` (the index's encoder: the one the store records),
            pagesight's embeddings classes, an encoder or a model name (see
            :func:`pagesight.pipelines._retrieve.query_encoder`).
        trust_remote_code: allow the models' own code (NVIDIA models need it).

    Raises:
        ConfigurationError: ``where`` or ``embedder`` is none of these.
    """

    def __init__(self, where: Any, embedder: Any = None, *, trust_remote_code: bool = False) -> None:
        from pagesight.pipelines._retrieve import check_embedder

        check_where(where)
        check_embedder(embedder)
        self.where = where
        self.embedder = embedder
        self.trust_remote_code = trust_remote_code
        self._index: Index | None = None
        self._lock = threading.Lock()

    @property
    def index(self) -> Index:
        """The index searched (opened on first use; with its own encoder when ``embedder`` is set)."""
        with self._lock:
            if self._index is None:
                from pagesight.index import Index

                trust = self.trust_remote_code
                where = self.where
                base = where if _is_index(where) else Index.open(where, trust_remote_code=trust)
                if self.embedder is not None:
                    from pagesight.pipelines._retrieve import query_encoder

                    encoder = query_encoder(self.embedder, base.store, trust_remote_code=trust)
                    trust = trust or base.trust_remote_code
                    base = Index.open(
                        base.store, encoder=encoder, profile=base.profile, trust_remote_code=trust
                    )
                self._index = base
            return self._index

    def search(
        self,
        query: str,
        *,
        k: int,
        mode: Mode = "hybrid",
        reranker: Any = None,
        rerank_candidates: int = 20,
        source: str | None = None,
        image: Any = None,
        exhaustive: bool = False,
        candidates: int | None = None,
        maxsim_device: str | None = None,
    ) -> list[Hit]:
        """The ``k`` best pages for ``query`` (and/or ``image``), best first.

        The arguments are :meth:`pagesight.Index.search`'s; ``candidates`` and ``maxsim_device``
        are :class:`~pagesight.retrieval.search.PageSearcher`'s ``maxsim_candidates`` and
        ``maxsim_device`` (late interaction).
        """
        searcher = self.index.searcher(
            mode,
            pagesight_reranker(reranker),
            exhaustive=exhaustive,
            rerank_candidates=rerank_candidates,
            maxsim_candidates=candidates,
            maxsim_device=maxsim_device,
        )
        return searcher.search(query or "", k=k, source=source, image=image)

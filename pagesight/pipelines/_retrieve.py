"""Pages for the prebuilt LangChain chain and LlamaIndex query engine, without framework imports.

Both builders take the same retrieval arguments (a store with an embedder, or a framework
retriever, and an optional reranker); this module turns the framework-free ones into pages:

- :class:`StoreSearch` searches a store with :class:`~pagesight.retrieval.search.PageSearcher`,
  opening the store and building the searcher on the first question (thread-safe);
- :func:`query_encoder` and :func:`model_reranker` turn ``embedder=`` and ``reranker=`` into the
  encoder and :class:`~pagesight.models.rerank.Reranker` objects the searcher uses;
- :func:`page_hit` reads a foreign document's metadata (a LangChain ``Document``, a LlamaIndex
  node) as a :class:`~pagesight.retrieval.store.Hit`, and :func:`hit_metadata` writes a hit back
  as metadata.

Example::

    pages = StoreSearch("index/", None, mode="hybrid", reranker=None)   # opens nothing yet
    hits = pages.search("how do I cite R?", k=5)                        # best first
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.errors import ConfigurationError
from pagesight.retrieval.store import Hit

if TYPE_CHECKING:
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.search import Mode, PageSearcher
    from pagesight.retrieval.store import PageStore

__all__ = [
    "StoreSearch",
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
    for name, value, least in (
        ("k", k, 1),
        ("max_images", max_images, 0),
        ("max_pixels", max_pixels, 1),
        ("max_chars_per_page", max_chars_per_page, 1),
        ("rerank_candidates", rerank_candidates, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"`{name}` must be an integer of at least {least}, got {value!r}")


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
        from pagesight.profiles import is_dense_vl_model, is_late_interaction_model

        if is_late_interaction_model(embedder):
            from pagesight.models.colembed import ColEmbedEncoder

            return ColEmbedEncoder(embedder, trust_remote_code=trust_remote_code)
        if is_dense_vl_model(embedder):
            from pagesight.models.vl import VLEncoder

            return VLEncoder(embedder, trust_remote_code=trust_remote_code)
        from pagesight.models.matryoshka import MatryoshkaEncoder

        return MatryoshkaEncoder(embedder, trust_remote_code=trust_remote_code)
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
    from pagesight.pipelines.stores import is_store_url

    if isinstance(store, (str, Path)):
        if not is_store_url(store) and not Path(store).is_dir():
            raise ConfigurationError(
                f"no store at {store}; create one with: pagesight index SOURCES... --store {store}"
            )
        return
    if not hasattr(store, "search") or not hasattr(store, "image_dir"):
        raise ConfigurationError(
            f"`store` must be a PageStore, a MultiVectorStore, a store folder or a Chroma server URL, "
            f"got {type(store).__name__}"
        )


class StoreSearch:
    """Search a page store; the store opens and the searcher is built on the first question.

    Args:
        store: a :class:`~pagesight.retrieval.store.PageStore`, a
            :class:`~pagesight.retrieval.multivector.MultiVectorStore`, a store folder or a Chroma
            server URL (opened with :func:`pagesight.pipelines.stores.open_store`).
        embedder: see :func:`query_encoder` (ignored in ``"bm25"`` mode).
        mode: ``"hybrid"``, ``"dense"`` or ``"bm25"``.
        reranker: a reranker applied inside the searcher, or ``None``.
        rerank_candidates: pages the reranker sees.
        trust_remote_code: allow the models' own code.

    Raises:
        ConfigurationError: ``store`` is a folder that holds no store, or not a store at all.
    """

    def __init__(
        self,
        store: PageStore | MultiVectorStore | str | Path,
        embedder: Any,
        *,
        mode: Mode = "hybrid",
        reranker: Reranker | None = None,
        rerank_candidates: int = 20,
        trust_remote_code: bool = False,
    ) -> None:
        if mode not in ("hybrid", "dense", "bm25"):
            raise ConfigurationError(f"`mode` must be 'hybrid', 'dense' or 'bm25', got {mode!r}")
        _check_store(store)
        check_embedder(embedder)
        self._store_arg = store
        self.embedder = embedder
        self.mode: Mode = mode
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self.trust_remote_code = trust_remote_code
        self._searcher: PageSearcher | None = None
        self._lock = threading.Lock()

    @property
    def searcher(self) -> PageSearcher:
        """The searcher, built (store opened, encoder constructed) on first use."""
        with self._lock:
            if self._searcher is None:
                from pagesight.pipelines.stores import open_store
                from pagesight.retrieval.search import PageSearcher

                store = self._store_arg
                if isinstance(store, (str, Path)):
                    store = open_store(store)
                encoder = (
                    None
                    if self.mode == "bm25"
                    else query_encoder(self.embedder, store, trust_remote_code=self.trust_remote_code)
                )
                self._searcher = PageSearcher(
                    store,
                    encoder,
                    mode=self.mode,
                    reranker=self.reranker,
                    rerank_candidates=self.rerank_candidates,
                )
            return self._searcher

    def search(self, question: str, k: int) -> list[Hit]:
        """The ``k`` best pages for ``question``, best first (reranked when a reranker is set)."""
        return self.searcher.search(question, k=k)


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
) -> tuple[StoreSearch | None, Reranker | None]:
    """What a builder retrieves with: the store search (``None`` when ``retriever`` does it) and
    pagesight's own reranker (``None`` when ``reranker`` is the framework's own reranker or absent).

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
    search = StoreSearch(
        store,
        embedder,
        mode=mode,  # type: ignore[arg-type]
        reranker=model,
        rerank_candidates=max(k, rerank_candidates),
        trust_remote_code=trust_remote_code,
    )
    return search, model


def store_image_root(store: PageStore | MultiVectorStore | str | Path | None) -> Path | None:
    """The folder relative ``image`` paths point into: the store's image folder (``None``: no store)."""
    if store is None:
        return None
    if isinstance(store, (str, Path)):
        from pagesight.integrations._encoder import image_root
        from pagesight.pipelines.stores import is_store_url

        return None if is_store_url(store) else image_root(store)
    return Path(store.image_dir)


def source_of(metadata: Mapping[str, Any]) -> str:
    """A document's source: ``source``, else ``file_path`` / ``file_name``, else ``"document"``."""
    for key in ("source", "file_path", "file_name"):
        value = metadata.get(key)
        if value:
            return str(value)
    return "document"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def page_number(metadata: Mapping[str, Any]) -> int:
    """A document's 1-based page number.

    - ``page_label`` (the printed page number LangChain's ``PyPDFLoader`` and LlamaIndex's PDF
      readers write) wins when it is a positive number;
    - else ``page``, read as 1-based (pagesight's convention), except that a document which also
      has a non-numeric ``page_label`` (``"iv"``) comes from a loader counting ``page`` from 0,
      so 1 is added;
    - a document with neither is one page: 1.

    ``page`` from a loader that counts from 0 and writes no ``page_label`` (``PyMuPDFLoader``) is
    taken as 1-based, one less than the printed page: add 1 to it before the chain sees it.
    """
    label = metadata.get("page_label")
    labelled = _as_int(label)
    if labelled is not None and labelled >= 1:
        return labelled
    page = _as_int(metadata.get("page"))
    if page is not None:
        return page + 1 if label is not None else page
    return 1


def page_hit(
    text: str,
    metadata: Mapping[str, Any],
    *,
    doc_id: str | None = None,
    score: float | None = None,
    image: Any = None,
    root: Path | None = None,
) -> Hit:
    """Read a framework document (text and metadata) as a page.

    Args:
        text: the document's text.
        metadata: its metadata; ``source``, ``page`` (see :func:`page_number`), ``image``,
            ``score``, ``id``, ``width``, ``height`` and ``content_hash`` are read when present.
        doc_id: the document's id (else ``metadata["id"]``, else ``"<source>#p<page>"``).
        score: the retrieval score (else ``metadata["score"]``, else 0).
        image: the page image when the metadata has none (a LlamaIndex ``ImageNode``'s path).
        root: the folder relative image paths are relative to (``None``: as given).
    """
    source = source_of(metadata)
    page = page_number(metadata)
    picture = metadata.get("image") or image
    path: Path | None = None
    if isinstance(picture, (str, Path)) and str(picture):
        path = Path(picture)
        if root is not None and not path.is_absolute():
            path = root / path
    if score is None:
        raw = metadata.get("score")
        score = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else 0.0
    width, height = _as_int(metadata.get("width")) or 0, _as_int(metadata.get("height")) or 0
    return Hit(
        id=str(doc_id or metadata.get("id") or f"{source}#p{page}"),
        source=source,
        page=page,
        text=text or "",
        image=path,
        width=width,
        height=height,
        content_hash=str(metadata.get("content_hash") or ""),
        score=float(score),
        text_source=str(metadata.get("text_source") or "layer"),
    )


def metadata_hit(text: str, metadata: Mapping[str, Any], *, doc_id: str | None = None) -> Hit:
    """A page back from metadata that :func:`hit_metadata` wrote (read as is: no page-number rules)."""
    image = metadata.get("image")
    return Hit(
        id=str(doc_id or metadata["id"]),
        source=str(metadata["source"]),
        page=int(metadata["page"]),
        text=text or "",
        image=Path(image) if image else None,
        width=0,
        height=0,
        content_hash="",
        score=float(metadata["score"]),
        text_source=str(metadata.get("text_source") or "layer"),
    )


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """``source, page, image, score, id, text_source`` of a page (``image``: a path string or ``None``)."""
    return {
        "source": hit.source,
        "page": hit.page,
        "image": str(hit.image) if hit.image is not None else None,
        "score": hit.score,
        "id": hit.id,
        "text_source": hit.text_source,
    }


def rerank_hits(reranker: Reranker, question: str, hits: Sequence[Hit], k: int) -> list[Hit]:
    """The ``k`` best of ``hits`` by ``reranker``, best first, ``score`` = the reranker's relevance."""
    from pagesight.models.rerank import RerankCandidate

    if not hits:
        return []
    candidates = [RerankCandidate(text=h.text, image=h.image, source=h.source, page=h.page) for h in hits]
    ranked = reranker.rerank(question, candidates, top_n=k)
    return [replace(hits[r.index], score=float(r.score)) for r in ranked]

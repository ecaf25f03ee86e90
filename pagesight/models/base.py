"""Framework-free encoder interfaces shared by the models, the store and the integrations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from pagesight.documents.page import Page

__all__ = ["EmbedderInfo", "DenseTextEncoder", "DensePageEncoder", "LateInteractionEncoder"]


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    """What a store records about the embedder that wrote it.

    Attributes:
        model: the model's id (Hub id, local folder name or Ollama model name).
        revision: pinned revision, or ``None`` for local folders and Ollama models.
        dimensions: length of the vectors the embedder returns.
        kind: ``"dense-text"``, ``"dense-vl"`` (pages embedded as image and/or text) or
            ``"late-interaction"``.
    """

    model: str
    revision: str | None
    dimensions: int
    kind: str

    def describe(self) -> str:
        rev = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.model}{rev} ({self.kind}, {self.dimensions}-d)"


@runtime_checkable
class DenseTextEncoder(Protocol):
    """A text encoder returning one L2-normalized float32 vector per text."""

    @property
    def info(self) -> EmbedderInfo: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries: array of shape ``(len(texts), dimensions)``."""
        ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents (pages): array of shape ``(len(texts), dimensions)``."""
        ...


@runtime_checkable
class DensePageEncoder(DenseTextEncoder, Protocol):
    """A dense encoder that embeds whole pages (image, text or both) into the query space.

    Vision-language embedders (``kind == "dense-vl"``) implement it; ingestion then embeds pages
    with :meth:`encode_pages` instead of their text.
    """

    def encode_pages(self, pages: Sequence[Page]) -> np.ndarray:
        """Embed pages: array of shape ``(len(pages), dimensions)``, rows in input order."""
        ...


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

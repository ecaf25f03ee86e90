"""What :class:`~pagesight.models.late_interaction.ColEmbedEncoder` needs from a backend; token rows out."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["ColEmbedBackend", "normalize_rows"]

_ZERO_ROW = 1e-6  # a row this short is padding (NVIDIA remote code zeroes padded positions)


class ColEmbedBackend(Protocol):
    """What :class:`~pagesight.models.late_interaction.ColEmbedEncoder` needs from a backend."""

    name: str

    def load(self) -> None: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def supports_images(self) -> bool: ...

    @property
    def supports_image_text(self) -> bool: ...

    def encode_queries(self, texts: list[str], batch_size: int) -> list[np.ndarray]: ...

    def encode_documents(self, texts: list[str], batch_size: int) -> list[np.ndarray]: ...

    def encode_images(self, images: list[Any], batch_size: int) -> list[np.ndarray]: ...

    def encode_image_texts(self, pairs: list[tuple[Any, str]], batch_size: int) -> list[np.ndarray]: ...


def normalize_rows(matrix: Any, *, drop_zero_rows: bool = False, what: str = "input") -> np.ndarray:
    """A float32 ``(n_tokens, dim)`` array with unit rows.

    Args:
        matrix: a 2-d array or tensor (any float dtype, any device).
        drop_zero_rows: drop all-zero rows first (padding, as the NVIDIA remote code marks it).
        what: names the input in the error message.

    Raises:
        ValueError: the matrix is not 2-d, holds NaN/inf, or has no row left.
    """
    if hasattr(matrix, "detach"):  # a torch tensor: bf16 has no numpy dtype
        matrix = matrix.detach().float().cpu().numpy()
    x = np.asarray(matrix, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a (n_tokens, dim) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: the model returned NaN or infinite values")
    norms = np.linalg.norm(x, axis=1)
    if drop_zero_rows:
        keep = norms > _ZERO_ROW
        x, norms = x[keep], norms[keep]
    if x.shape[0] == 0:
        raise ValueError(f"{what}: the model returned no token vectors")
    out: np.ndarray = (x / np.maximum(norms, 1e-12)[:, None]).astype(np.float32)
    return out

"""What :class:`~pagesight.models.dense_vl.VLEncoder` needs from a backend, and its output checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pagesight.errors import ModelNotAvailableError
from pagesight.models._torch import to_numpy

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["VLBackend", "check_matrix"]


class VLBackend(Protocol):
    """A dense vision-language backend: one raw vector per input.

    Every ``encode_*`` method returns a float32 ``(n, native_dimensions)`` array, one row per input,
    in any norm; :class:`~pagesight.models.dense_vl.VLEncoder` checks the values are finite, truncates and
    L2-normalizes. A backend without images (or without image+text input) raises
    :class:`~pagesight.errors.ConfigurationError` naming the model from those methods.
    """

    name: str

    def load(self) -> None: ...

    @property
    def native_dimensions(self) -> int: ...

    @property
    def supports_images(self) -> bool: ...

    @property
    def supports_image_text(self) -> bool: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_documents(self, texts: list[str]) -> np.ndarray: ...

    def encode_images(self, images: list[Image]) -> np.ndarray: ...

    def encode_image_texts(self, pairs: list[tuple[Image, str]]) -> np.ndarray: ...


def check_matrix(x: Any, n: int, what: str, dimensions: int | None = None) -> np.ndarray:
    """``x`` as a float32 ``(n, d)`` array, checked.

    Args:
        x: the model's output (tensor, array or nested list).
        n: how many inputs produced it.
        what: names the inputs in the error message (``"query"``, ``"image"``).
        dimensions: the expected row length, ``None`` to accept any.

    Raises:
        ModelNotAvailableError: wrong shape, or NaN / infinite values (a broken model or dtype).
    """
    out = to_numpy(x)
    if out.ndim == 1 and n == 1:
        out = out[None, :]
    if out.ndim != 2 or out.shape[0] != n:
        raise ModelNotAvailableError(
            f"the model returned shape {tuple(out.shape)} for {n} {what} input(s); expected ({n}, dimensions)"
        )
    if dimensions is not None and out.shape[1] != dimensions:
        raise ModelNotAvailableError(
            f"the model returned {out.shape[1]}-d {what} vectors; expected {dimensions}-d"
        )
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out).all(axis=1)).sum())
        raise ModelNotAvailableError(
            f"the model returned NaN or infinite values for {bad} of {n} {what} input(s); "
            "try dtype='float32' or another device"
        )
    return out

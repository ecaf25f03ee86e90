"""Small helpers shared by the late-interaction backends: token matrices out, images in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pagesight.errors import DocumentLoadError, ModelNotAvailableError

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec

__all__ = ["ColEmbedBackend", "ImageInput", "normalize_rows", "open_image", "resolve_device", "torch_dtype"]

ImageInput = Any
"""A ``PIL.Image.Image``, or a path (``str`` / ``os.PathLike``) to an image file."""

_ZERO_ROW = 1e-6  # a row this short is padding (NVIDIA remote code zeroes padded positions)


class ColEmbedBackend(Protocol):
    """What :class:`~pagesight.models.colembed.ColEmbedEncoder` needs from a backend."""

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


def open_image(image: ImageInput, *, source: str | None = None, page: int | None = None) -> Any:
    """Open ``image`` (a PIL image or a file path) as an RGB ``PIL.Image.Image``.

    Raises:
        DocumentLoadError: the file is missing or not an image (names the file and page).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(f"images must be PIL images or file paths, got {type(image).__name__}")
    where = source if source is not None else str(image)
    try:
        with Image.open(image) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as e:
        raise DocumentLoadError(where, f"image file {os.fspath(image)} does not exist", page=page) from e
    except (UnidentifiedImageError, OSError) as e:
        raise DocumentLoadError(where, f"{os.fspath(image)} is not a readable image ({e})", page=page) from e


def resolve_device(device: str | None) -> str:
    """``device``, or ``"cuda"`` when available, else ``"cpu"``."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_DTYPES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}


def torch_dtype(dtype: str | None, device: str) -> Any:
    """The torch dtype for ``dtype`` (``None``: bfloat16 on CUDA, float32 elsewhere)."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, _DTYPES[dtype])


def check_dtype(dtype: str | None) -> None:
    """Raise ``ValueError`` for a dtype name :func:`torch_dtype` does not know."""
    if dtype is not None and dtype != "auto" and dtype not in _DTYPES:
        raise ValueError(f"`dtype` must be one of auto, {', '.join(sorted(set(_DTYPES)))}; got {dtype!r}")


def model_source(spec: ModelSpec, revision: str | None) -> tuple[str, str | None]:
    """``(local folder, None)`` or ``(Hub id, revision)`` to load ``spec`` from."""
    if spec.path is not None:
        return spec.path, None
    if spec.hf_id is None:
        raise ModelNotAvailableError(f"{spec.alias} has neither a local folder nor a Hugging Face id")
    return spec.hf_id, revision

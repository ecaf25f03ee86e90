"""Torch settings every backend shares: the device, the weights' dtype, where to load from, arrays out.

Torch is imported inside the functions, never at module import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pagesight._checks import check_choice
from pagesight.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec

__all__ = ["check_dtype", "model_source", "resolve_device", "to_numpy", "torch_dtype"]


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
    """Refuse a dtype name :func:`torch_dtype` does not know.

    Raises:
        ConfigurationError: naming ``dtype`` and the names it may take (a ``ValueError`` too).
    """
    if dtype is not None:
        check_choice("dtype", dtype, ("auto", *sorted(_DTYPES)))


def model_source(spec: ModelSpec, revision: str | None) -> tuple[str, str | None]:
    """``(local folder, None)`` or ``(Hub id, revision)`` to load ``spec`` from."""
    if spec.path is not None:
        return spec.path, None
    if spec.hf_id is None:
        raise ModelNotAvailableError(f"{spec.alias} has neither a local folder nor a Hugging Face id")
    return spec.hf_id, revision


def to_numpy(x: Any) -> np.ndarray:
    """A float32 numpy array from a torch tensor (any dtype or device, bf16 included), list or array."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    out: np.ndarray = np.asarray(x, dtype=np.float32)
    return out

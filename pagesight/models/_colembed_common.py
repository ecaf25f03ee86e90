"""Old home of the backend helpers, now in :mod:`pagesight.models._torch`, :mod:`pagesight.models._images`
and :mod:`pagesight.models.late_interaction._backend` (kept for one release)."""

from __future__ import annotations

from pagesight.models._images import ImageInput, open_image
from pagesight.models._torch import check_dtype, model_source, resolve_device, torch_dtype
from pagesight.models.late_interaction._backend import ColEmbedBackend, normalize_rows

__all__ = [
    "ColEmbedBackend",
    "ImageInput",
    "check_dtype",
    "model_source",
    "normalize_rows",
    "open_image",
    "resolve_device",
    "torch_dtype",
]

"""Old home of :mod:`pagesight.models._batching` (kept for one release)."""

from __future__ import annotations

from pagesight.errors import EncoderOutOfMemoryError
from pagesight.models._batching import halve, is_out_of_memory, run_batched

__all__ = ["EncoderOutOfMemoryError", "halve", "is_out_of_memory", "run_batched"]

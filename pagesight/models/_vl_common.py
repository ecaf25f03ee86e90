"""Old home of :mod:`pagesight.models.dense_vl._backend` (kept for one release)."""

from __future__ import annotations

from pagesight.models._torch import to_numpy
from pagesight.models.dense_vl._backend import VLBackend, check_matrix

__all__ = ["VLBackend", "check_matrix", "to_numpy"]

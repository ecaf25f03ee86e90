"""Old path of :mod:`pagesight.models.dense_vl` (kept for one release)."""

from pagesight.models.dense_vl import *  # noqa: F403
from pagesight.models.dense_vl import __all__ as __all__

"""Old path of :mod:`pagesight.models.dense_vl.nvidia` (kept for one release)."""

from pagesight.models.dense_vl.nvidia import *  # noqa: F403
from pagesight.models.dense_vl.nvidia import __all__ as __all__

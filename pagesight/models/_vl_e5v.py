"""Old path of :mod:`pagesight.models.dense_vl.e5v` (kept for one release)."""

from pagesight.models.dense_vl.e5v import *  # noqa: F403
from pagesight.models.dense_vl.e5v import __all__ as __all__

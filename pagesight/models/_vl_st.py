"""Old path of :mod:`pagesight.models.dense_vl.st` (kept for one release)."""

from pagesight.models.dense_vl.st import *  # noqa: F403
from pagesight.models.dense_vl.st import __all__ as __all__

"""Old path of :mod:`pagesight.models.dense_vl.nvembed` (kept for one release)."""

from pagesight.models.dense_vl.nvembed import *  # noqa: F403
from pagesight.models.dense_vl.nvembed import __all__ as __all__

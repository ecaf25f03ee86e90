"""Old path of :mod:`pagesight.models.rerank.nvidia` (kept for one release)."""

from pagesight.models.rerank.nvidia import *  # noqa: F403
from pagesight.models.rerank.nvidia import __all__ as __all__

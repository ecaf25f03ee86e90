"""Old path of :mod:`pagesight.models.rerank.text` (kept for one release)."""

from pagesight.models.rerank.text import *  # noqa: F403
from pagesight.models.rerank.text import __all__ as __all__

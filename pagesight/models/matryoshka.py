"""Old path of :mod:`pagesight.models.dense_text` (kept for one release)."""

from pagesight.models.dense_text import *  # noqa: F403
from pagesight.models.dense_text import __all__ as __all__

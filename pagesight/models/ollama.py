"""Old path of :mod:`pagesight.models.dense_text.ollama` (kept for one release)."""

from pagesight.models.dense_text.ollama import *  # noqa: F403
from pagesight.models.dense_text.ollama import __all__ as __all__

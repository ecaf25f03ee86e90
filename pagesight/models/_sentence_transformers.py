"""Old path of :mod:`pagesight.models.dense_text.sentence_transformers` (kept for one release)."""

from pagesight.models.dense_text.sentence_transformers import *  # noqa: F403
from pagesight.models.dense_text.sentence_transformers import __all__ as __all__

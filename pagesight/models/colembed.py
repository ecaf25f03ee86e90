"""Old path of :mod:`pagesight.models.late_interaction` (kept for one release)."""

from pagesight.models.late_interaction import *  # noqa: F403
from pagesight.models.late_interaction import __all__ as __all__

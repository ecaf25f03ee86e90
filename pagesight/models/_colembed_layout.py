"""Old path of :mod:`pagesight.models.late_interaction.layout` (kept for one release)."""

from pagesight.models.late_interaction.layout import *  # noqa: F403
from pagesight.models.late_interaction.layout import __all__ as __all__

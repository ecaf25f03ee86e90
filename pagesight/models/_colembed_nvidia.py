"""Old path of :mod:`pagesight.models.late_interaction.nvidia` (kept for one release)."""

from pagesight.models.late_interaction.nvidia import *  # noqa: F403
from pagesight.models.late_interaction.nvidia import __all__ as __all__

"""Old path of :mod:`pagesight.models.late_interaction.st` (kept for one release)."""

from pagesight.models.late_interaction.st import *  # noqa: F403
from pagesight.models.late_interaction.st import __all__ as __all__

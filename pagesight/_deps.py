"""Import optional dependencies with an actionable message."""

from __future__ import annotations

import importlib
from types import ModuleType

from pagesight.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra.

    Args:
        module: dotted module name, e.g. ``"chromadb"``.
        extra: the pagesight extra that installs it, e.g. ``"chroma"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f'{module} is not installed; install it with: pip install "pagesight[{extra}]"'
        ) from e

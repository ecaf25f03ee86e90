"""Moved to :mod:`pagesight.models.generate`; this path re-exports it for one release."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.models.generate import GENERATOR_HELP as GENERATOR_HELP
    from pagesight.models.generate import make_generator as make_generator
    from pagesight.models.generate import parse_generator_spec as parse_generator_spec

__all__ = ["GENERATOR_HELP", "make_generator", "parse_generator_spec"]


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("pagesight.models.generate"), name)

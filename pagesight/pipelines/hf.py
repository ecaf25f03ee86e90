"""Moved to :mod:`pagesight.models.generate.hf`; this path re-exports it for one release."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.models.generate.hf import KNOWN_VLMS as KNOWN_VLMS
    from pagesight.models.generate.hf import KnownVLM as KnownVLM
    from pagesight.models.generate.hf import TransformersGenerator as TransformersGenerator

__all__ = ["KNOWN_VLMS", "KnownVLM", "TransformersGenerator"]


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("pagesight.models.generate.hf"), name)

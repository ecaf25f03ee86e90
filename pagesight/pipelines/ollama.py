"""Moved to :mod:`pagesight.models.generate.ollama`; this path re-exports it for one release."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.models.generate.ollama import OllamaGenerator as OllamaGenerator

__all__ = ["OllamaGenerator"]


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("pagesight.models.generate.ollama"), name)

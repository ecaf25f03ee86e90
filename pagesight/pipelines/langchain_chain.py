"""Moved to :mod:`pagesight.integrations.langchain.chain`; this path re-exports it for one release."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.integrations.langchain.chain import build_langchain_chain as build_langchain_chain

__all__ = ["build_langchain_chain"]


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("pagesight.integrations.langchain.chain"), name)

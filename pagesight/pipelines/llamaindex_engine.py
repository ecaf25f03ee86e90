"""Moved to :mod:`pagesight.integrations.llama_index.query_engine`; re-exported here for one release."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.integrations.llama_index.query_engine import PageQueryEngine as PageQueryEngine
    from pagesight.integrations.llama_index.query_engine import (
        build_llamaindex_query_engine as build_llamaindex_query_engine,
    )

__all__ = ["PageQueryEngine", "build_llamaindex_query_engine"]


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module("pagesight.integrations.llama_index.query_engine"), name)

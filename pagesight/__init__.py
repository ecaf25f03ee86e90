"""pagesight: search and question visual documents from Python, LangChain and LlamaIndex.

::

    from pagesight import Index

    with Index.create("store", profile="offline") as index:
        index.add(["examples/"])
        hits = index.search("floating point equality", k=3)

``Index`` is imported on first use, so ``import pagesight`` loads no model, store or framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pagesight.errors import PagesightError
from pagesight.types import Hit, Page

if TYPE_CHECKING:
    from pagesight.index import Index

__version__ = "0.1.0"

__all__ = ["Hit", "Index", "Page", "PagesightError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Index":
        from pagesight.index import Index

        return Index
    raise AttributeError(f"module 'pagesight' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Index"})

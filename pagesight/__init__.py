"""pagesight: search and question visual documents from LangChain and LlamaIndex."""

from __future__ import annotations

from pagesight.documents.page import Page
from pagesight.errors import PagesightError

__version__ = "0.1.0"

__all__ = ["Page", "PagesightError", "__version__"]

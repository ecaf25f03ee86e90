"""The web app behind ``pagesight serve`` (Gradio): add documents, ask, see the cited pages.

Gradio is imported only when an app is built, so ``import pagesight.ui`` needs only the core::

    from pagesight.ui import build_app, serve

    serve("index/")                      # http://127.0.0.1:7860, loopback only
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.ui.app import build_app as build_app
    from pagesight.ui.app import launch as launch
    from pagesight.ui.app import serve as serve
    from pagesight.ui.state import App as App

_LAZY = {
    "App": "pagesight.ui.state",
    "build_app": "pagesight.ui.app",
    "launch": "pagesight.ui.app",
    "serve": "pagesight.ui.app",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pagesight.ui' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return __all__

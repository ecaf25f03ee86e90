"""Pipelines: ingest (sources -> pages -> embed -> store) and answer (question -> pages -> cited answer).

Everything is imported lazily, so ``import pagesight.pipelines`` needs only the core. The
functions ``ingest`` and ``answer`` live in the modules of the same names
(``from pagesight.pipelines.answer import answer``)::

    from pagesight.pipelines import build_langchain_chain, build_llamaindex_query_engine, make_generator
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pagesight.pipelines.answer import Answer as Answer
    from pagesight.pipelines.answer import Citation as Citation
    from pagesight.pipelines.answer import ExtractiveGenerator as ExtractiveGenerator
    from pagesight.pipelines.answer import Generator as Generator
    from pagesight.pipelines.generators import make_generator as make_generator
    from pagesight.pipelines.hf import TransformersGenerator as TransformersGenerator
    from pagesight.pipelines.langchain_chain import build_langchain_chain as build_langchain_chain
    from pagesight.pipelines.llamaindex_engine import (
        build_llamaindex_query_engine as build_llamaindex_query_engine,
    )
    from pagesight.pipelines.ollama import OllamaGenerator as OllamaGenerator
    from pagesight.pipelines.prompt import build_prompt as build_prompt

_LAZY: dict[str, tuple[str, str | None]] = {
    "Answer": ("pagesight.pipelines.answer", None),
    "Citation": ("pagesight.pipelines.answer", None),
    "ExtractiveGenerator": ("pagesight.pipelines.answer", None),
    "Generator": ("pagesight.pipelines.answer", None),
    "build_prompt": ("pagesight.pipelines.prompt", None),
    "make_generator": ("pagesight.pipelines.generators", None),
    "OllamaGenerator": ("pagesight.pipelines.ollama", "ollama"),
    "TransformersGenerator": ("pagesight.pipelines.hf", "hf"),
    "build_langchain_chain": ("pagesight.pipelines.langchain_chain", "langchain"),
    "build_llamaindex_query_engine": ("pagesight.pipelines.llamaindex_engine", "llamaindex"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pagesight.pipelines' has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        if extra is None:
            raise
        raise ImportError(
            f"{name} needs an optional dependency ({e.name or e}); "
            f'install it with: pip install "pagesight[{extra}]"'
        ) from e
    return getattr(mod, name)


def __dir__() -> list[str]:
    return __all__

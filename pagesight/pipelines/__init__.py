"""Pipelines: ingest (sources -> pages -> embed -> store) and answer (question -> pages -> cited answer).

Everything is imported lazily, so ``import pagesight.pipelines`` needs only the core. The
functions ``ingest`` and ``answer`` live in the modules of the same names
(``from pagesight.pipelines.answer import answer``)::

    from pagesight.pipelines import build_langchain_chain, build_llamaindex_query_engine, make_generator
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pagesight._deps import lazy_attribute

if TYPE_CHECKING:
    from pagesight.integrations.langchain.chain import build_langchain_chain as build_langchain_chain
    from pagesight.integrations.llama_index.query_engine import (
        build_llamaindex_query_engine as build_llamaindex_query_engine,
    )
    from pagesight.models.generate import make_generator as make_generator
    from pagesight.models.generate.hf import TransformersGenerator as TransformersGenerator
    from pagesight.models.generate.ollama import OllamaGenerator as OllamaGenerator
    from pagesight.pipelines.answer import Answer as Answer
    from pagesight.pipelines.answer import Citation as Citation
    from pagesight.pipelines.answer import ExtractiveGenerator as ExtractiveGenerator
    from pagesight.pipelines.answer import Generator as Generator
    from pagesight.pipelines.prompt import build_prompt as build_prompt

_LAZY: dict[str, tuple[str, str | None]] = {
    "Answer": ("pagesight.pipelines.answer", None),
    "Citation": ("pagesight.pipelines.answer", None),
    "ExtractiveGenerator": ("pagesight.pipelines.answer", None),
    "Generator": ("pagesight.pipelines.answer", None),
    "build_prompt": ("pagesight.pipelines.prompt", None),
    "make_generator": ("pagesight.models.generate", None),
    "OllamaGenerator": ("pagesight.models.generate.ollama", "ollama"),
    "TransformersGenerator": ("pagesight.models.generate.hf", "hf"),
    "build_langchain_chain": ("pagesight.integrations.langchain.chain", "langchain"),
    "build_llamaindex_query_engine": ("pagesight.integrations.llama_index.query_engine", "llamaindex"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _LAZY)


def __dir__() -> list[str]:
    return __all__

"""Generators: the models that write cited answers from retrieved pages.

Pick one by name: ``extractive``, ``ollama:<model>`` or ``hf:<model id or folder>`` (what
``pagesight ask --generator`` and profiles call)::

    make_generator("extractive", encoder=encoder)        # offline: quotes the best passages
    make_generator("ollama:qwen2.5vl:3b")                # an Ollama model (vision models get page images)
    make_generator("hf:Qwen/Qwen2.5-VL-3B-Instruct")     # a transformers VLM (or text LLM)

One file per backend: :mod:`~pagesight.models.generate.ollama` (:class:`OllamaGenerator`) and
:mod:`~pagesight.models.generate.hf` (:class:`TransformersGenerator`); both import lazily from
here. The extractive generator needs no model of its own
(:class:`pagesight.pipelines.answer.ExtractiveGenerator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pagesight._deps import lazy_attribute
from pagesight.errors import ConfigurationError

if TYPE_CHECKING:
    from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
    from pagesight.models.generate.hf import TransformersGenerator as TransformersGenerator
    from pagesight.models.generate.ollama import OllamaGenerator as OllamaGenerator
    from pagesight.pipelines.answer import Generator

__all__ = [
    "GENERATOR_HELP",
    "OllamaGenerator",
    "TransformersGenerator",
    "make_generator",
    "parse_generator_spec",
]

GENERATOR_HELP = "extractive | ollama:<model> | hf:<model id or folder>"

_LAZY: dict[str, tuple[str, str | None]] = {
    "OllamaGenerator": ("pagesight.models.generate.ollama", "ollama"),
    "TransformersGenerator": ("pagesight.models.generate.hf", "hf"),
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, name, _LAZY)


def parse_generator_spec(spec: str) -> tuple[str, str]:
    """``(kind, model)`` of a generator spec: ``("extractive", "")``, ``("ollama", m)`` or ``("hf", m)``.

    Raises:
        ConfigurationError: an unknown form or an empty model name.
    """
    kind, _, name = spec.strip().partition(":")
    kind, name = kind.lower(), name.strip()
    if (kind == "extractive" and not name) or (kind in ("ollama", "hf") and name):
        return kind, name
    raise ConfigurationError(f"unknown generator {spec!r}; use {GENERATOR_HELP}")


def make_generator(
    spec: str,
    *,
    encoder: DenseTextEncoder | LateInteractionEncoder | None = None,
    ollama_host: str | None = None,
    trust_remote_code: bool = False,
    **options: Any,
) -> Generator:
    """The generator that ``spec`` names.

    Args:
        spec: ``"extractive"``, ``"ollama:<model>"`` (e.g. ``ollama:llama3.2``,
            ``ollama:qwen2.5vl:3b``) or ``"hf:<model>"`` (a Hub id or a local folder).
        encoder: the store's encoder (the extractive generator scores passages with it).
        ollama_host: Ollama server address for ``ollama:`` (``None``: ``$OLLAMA_HOST`` or
            ``http://127.0.0.1:11434``).
        trust_remote_code: for ``hf:``: allow the model's own code (pinned revisions only).
        **options: passed to the generator's constructor (``max_images``, ``max_pixels``,
            ``max_new_tokens``, ...).

    Raises:
        ConfigurationError: an unknown form, an empty model name, or ``extractive`` without an encoder.
    """
    kind, name = parse_generator_spec(spec)
    if kind == "extractive":
        from pagesight.pipelines.answer import ExtractiveGenerator

        if encoder is None:
            raise ConfigurationError("the extractive generator needs the store's encoder")
        return ExtractiveGenerator(encoder, **options)
    if kind == "ollama":
        from pagesight.models.generate.ollama import OllamaGenerator

        return OllamaGenerator(name, host=ollama_host, **options)
    from pagesight.models.generate.hf import TransformersGenerator

    return TransformersGenerator(name, trust_remote_code=trust_remote_code, **options)

"""Pick a generator by name: ``extractive``, ``ollama:<model>`` or ``hf:<model id or folder>``.

This is what ``pagesight ask --generator`` and profiles call::

    make_generator("extractive", encoder=encoder)        # offline: quotes the best passages
    make_generator("ollama:qwen2.5vl:3b")                # an Ollama model (vision models get page images)
    make_generator("hf:Qwen/Qwen2.5-VL-3B-Instruct")     # a transformers VLM (or text LLM)
"""

from __future__ import annotations

from typing import Any

from pagesight.errors import ConfigurationError
from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
from pagesight.pipelines.answer import ExtractiveGenerator, Generator

__all__ = ["GENERATOR_HELP", "make_generator"]

GENERATOR_HELP = "extractive | ollama:<model> | hf:<model id or folder>"


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
    kind, _, name = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "extractive" and not name:
        if encoder is None:
            raise ConfigurationError("the extractive generator needs the store's encoder")
        return ExtractiveGenerator(encoder, **options)
    if kind == "ollama" and name.strip():
        from pagesight.pipelines.ollama import OllamaGenerator

        return OllamaGenerator(name.strip(), host=ollama_host, **options)
    if kind == "hf" and name.strip():
        from pagesight.pipelines.hf import TransformersGenerator

        return TransformersGenerator(name.strip(), trust_remote_code=trust_remote_code, **options)
    raise ConfigurationError(f"unknown generator {spec!r}; use {GENERATOR_HELP}")

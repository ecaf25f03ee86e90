"""The stand-in as remote code written for an older transformers: it imports a symbol that
transformers 4.49 had and later versions removed, as NVIDIA's v1 ColEmbed code does."""

from transformers.models.llama.modeling_llama import LLAMA_INPUTS_DOCSTRING  # noqa: F401

from .modeling_standin_colembed import StandinColEmbedConfig, StandinColEmbedModel  # noqa: F401

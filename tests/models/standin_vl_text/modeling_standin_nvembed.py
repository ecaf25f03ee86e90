"""A tiny stand-in for NV-Embed-v2's remote code (``modeling_nvembed.py``), same forward contract.

NV-Embed-v2's ``NVEmbedModel.forward(input_ids, attention_mask, pool_mask=None, return_dict=True)``
runs a bidirectional Mistral, then its latent-attention layer; without a ``pool_mask`` the
latent-attention layer returns one vector per token, and the sentence-transformers recipe mean-pools
those with ``Pooling(include_prompt=False)``. The result is returned as
``{"sentence_embeddings": tensor}`` (or ``(tensor,)`` with ``return_dict=False``).

Here the "bidirectional Mistral" is a tiny random-weight ``LlamaModel`` built from the nested
``text_config`` and the latent-attention layer is one linear map, so the tests can recompute the
pooled vector by hand; ``calls`` records the inputs of every forward. Loaded through the real
``from_pretrained(..., trust_remote_code=True)`` path.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaModel, PretrainedConfig, PreTrainedModel


class StandinNVEmbedConfig(PretrainedConfig):
    model_type = "standin_nvembed"

    def __init__(self, text_config: dict | None = None, **kwargs) -> None:
        self.text_config = text_config or {
            "vocab_size": 64,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
        }
        self.hidden_size = int(self.text_config["hidden_size"])
        super().__init__(**kwargs)


class StandinNVEmbedModel(PreTrainedModel):
    config_class = StandinNVEmbedConfig
    base_model_prefix = "standin_nvembed"
    _supports_sdpa = True

    def __init__(self, config: StandinNVEmbedConfig) -> None:
        super().__init__(config)
        self.embedding_model = LlamaModel(LlamaConfig(**config.text_config))
        self.latent_attention_model = nn.Linear(config.hidden_size, config.hidden_size)
        self.calls: list[dict[str, torch.Tensor]] = []  # the inputs of every forward, for the tests
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pool_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> tuple[torch.Tensor] | dict[str, torch.Tensor]:
        self.calls.append(
            {"input_ids": input_ids.detach().cpu(), "attention_mask": attention_mask.detach().cpu()}
        )
        hidden = self.embedding_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        embeds = self.latent_attention_model(hidden)
        if pool_mask is not None:
            mask = pool_mask.unsqueeze(-1).to(embeds.dtype)
            embeds = (embeds * mask).sum(dim=1) / mask.sum(dim=1)
        if not return_dict:
            return (embeds,)
        return {"sentence_embeddings": embeds}

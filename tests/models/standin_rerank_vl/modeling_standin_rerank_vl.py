"""A tiny stand-in for the remote code of ``nvidia/llama-nemotron-rerank-vl-1b-v2`` (the model half).

Loaded by the tests through the real ``AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True)`` path. It takes what the stand-in processor
(``processing_standin_rerank_vl.py``) produces, as the real model takes what its processor produces:
``input_ids`` / ``attention_mask`` (left-padded, one row per (query, document) pair; a row whose
document has an image starts with the ``IMG`` token) and ``pixel_values`` (the image tiles of the
rows that have one, in row order, bfloat16 like the real processor's), and returns an object with
``.logits`` of shape ``(n, 1)``.

The score is meaningful, so ranking tests can assert an order::

    logit = (distinct query words found in the document text)
            + 2 * (mean red - mean of green and blue)     # rows with an image; channels in [0, 1]
            + 0.01 * tanh(random linear layer over the mean token embedding)

so a pure red image adds 2, white or grey adds 0, pure blue subtracts 1. The random layer makes it a
real ``nn.Module`` whose weights ``from_pretrained`` loads; it moves a logit by at most 0.01.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

PAD, SEP, IMG, OFFSET = 0, 1, 2, 3


class StandinRerankVLConfig(PretrainedConfig):
    model_type = "standin_rerank_vl"

    def __init__(
        self, hidden_size: int = 16, vocab_size: int = 4096, noise_scale: float = 0.01, **kwargs
    ) -> None:
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        self.noise_scale = noise_scale
        kwargs.setdefault("num_labels", 1)
        super().__init__(**kwargs)


@dataclass
class StandinRerankOutput(ModelOutput):
    logits: torch.Tensor | None = None


class StandinRerankVLForSequenceClassification(PreTrainedModel):
    config_class = StandinRerankVLConfig
    base_model_prefix = "standin"
    _supports_sdpa = True

    def __init__(self, config: StandinRerankVLConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, h, padding_idx=PAD)
        self.vision = nn.Linear(3, h)
        self.score = nn.Linear(h, 1)
        self.calls: list[dict] = []
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> StandinRerankOutput | tuple[torch.Tensor]:
        n = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = (input_ids != PAD).long()
        first = attention_mask.long().argmax(dim=1)  # rows are left-padded: first real token
        has_image = input_ids[torch.arange(n, device=input_ids.device), first] == IMG
        image_rows = int(has_image.sum())
        tiles = 0 if pixel_values is None else int(pixel_values.shape[0])
        if tiles != image_rows:
            raise ValueError(f"{image_rows} rows have an image but pixel_values holds {tiles} tiles")
        self.calls.append(
            {
                "n": n,
                "length": int(input_ids.shape[1]),
                "images": image_rows,
                "pixel_dtype": None if pixel_values is None else pixel_values.dtype,
            }
        )

        mask = attention_mask.to(self.dtype).unsqueeze(-1)
        tokens = self.embed(input_ids) * mask
        pooled = tokens.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

        image_term = torch.zeros(n, dtype=self.dtype, device=input_ids.device)
        if pixel_values is not None and tiles:
            pixels = (pixel_values.to(self.dtype) + 1.0) / 2.0  # SigLIP-normalized [-1, 1] -> [0, 1]
            channels = pixels.mean(dim=(2, 3))  # (tiles, 3)
            red = channels[:, 0] - (channels[:, 1] + channels[:, 2]) / 2.0
            image_term[has_image] = 2.0 * red
            pooled = pooled.clone()
            pooled[has_image] = pooled[has_image] + self.vision(channels)

        overlap = torch.zeros(n, dtype=self.dtype, device=input_ids.device)
        for i in range(n):
            ids = input_ids[i][attention_mask[i].bool()].tolist()
            ids = [t for t in ids if t != IMG]
            cut = ids.index(SEP) if SEP in ids else len(ids)
            query, doc = set(ids[:cut]), set(ids[cut + 1 :])
            overlap[i] = float(len(query & doc))

        noise = self.config.noise_scale * torch.tanh(self.score(pooled)).squeeze(-1)
        logits = (overlap + image_term + noise).unsqueeze(-1)
        if return_dict is False:
            return (logits,)
        return StandinRerankOutput(logits=logits)

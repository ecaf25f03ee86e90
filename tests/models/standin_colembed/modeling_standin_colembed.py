"""A tiny stand-in for NVIDIA's ColEmbed remote code (same methods, same return conventions).

Loaded by the tests through the real ``AutoModel.from_pretrained(folder, trust_remote_code=True)``
path. A real (tiny, random-weight) torch network: byte tokens + learned positions for text, an
8x8 patch convolution over the image resized to 32x32 for images, one transformer encoder layer
over [image patches, marker, text bytes], a linear head.

Return conventions copied from NVIDIA's remote code (``nemotron-colembed-vl-*-v2``
``modeling_*.py``: ``_extract_embeddings`` / ``_pad_and_stack_embeddings`` / ``colbert_score``):
``forward_queries`` / ``forward_passages`` / ``forward_images`` / ``forward_documents`` return ONE
CPU tensor ``(n_inputs, max_tokens, hidden)``; per batch, hidden states times the attention mask,
L2-normalized (so padded rows are exactly zero), batches zero-padded to the longest and
concatenated. ``get_scores`` takes tensors or lists and sums per-query-token maxima (MaxSim).

One deliberate difference: the token vectors pass through softplus before normalization, so all
similarities are >= 0 and NVIDIA's zero-padding cannot change a maximum; pagesight's stripped MaxSim
then equals ``get_scores`` exactly, which the tests check.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

PAD, QUERY, PASSAGE, OFFSET = 0, 1, 2, 3


class StandinColEmbedConfig(PretrainedConfig):
    model_type = "standin_colembed"

    def __init__(
        self,
        hidden_size: int = 32,
        num_heads: int = 2,
        image_size: int = 32,
        patch_size: int = 8,
        max_positions: int = 512,
        **kwargs,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.image_size = image_size
        self.patch_size = patch_size
        self.max_positions = max_positions
        super().__init__(**kwargs)


def _pad_and_stack_embeddings(tensors: list[torch.Tensor]) -> torch.Tensor:
    max_len = max(t.shape[1] for t in tensors)
    total = sum(t.shape[0] for t in tensors)
    out = torch.zeros(total, max_len, tensors[0].shape[2], dtype=tensors[0].dtype)
    offset = 0
    for t in tensors:
        out[offset : offset + t.shape[0], : t.shape[1]] = t
        offset += t.shape[0]
    return out


class StandinColEmbedModel(PreTrainedModel):
    config_class = StandinColEmbedConfig
    base_model_prefix = "standin"
    _supports_sdpa = True

    def __init__(self, config: StandinColEmbedConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(256 + OFFSET, h, padding_idx=PAD)
        self.position = nn.Embedding(config.max_positions, h)
        self.patch = nn.Conv2d(3, h, kernel_size=config.patch_size, stride=config.patch_size)
        self.layer = nn.TransformerEncoderLayer(
            h, config.num_heads, dim_feedforward=2 * h, dropout=0.0, batch_first=True
        )
        self.head = nn.Linear(h, h)
        self.calls: list[tuple[str, int]] = []
        self.post_init()

    @property
    def patches_per_image(self) -> int:
        return (self.config.image_size // self.config.patch_size) ** 2

    def _pixels(self, image) -> torch.Tensor:
        size = self.config.image_size
        array = np.asarray(image.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)

    def _ids(self, marker: int, text: str, room: int) -> list[int]:
        return [marker] + [b + OFFSET for b in text.encode("utf-8")][: max(room - 1, 0)]

    def forward(self, input_ids, attention_mask, pixel_values=None):
        x = self.embed(input_ids)
        mask = attention_mask
        if pixel_values is not None:
            patches = self.patch(pixel_values).flatten(2).transpose(1, 2)
            x = torch.cat([patches, x], dim=1)
            mask = torch.cat([torch.ones(patches.shape[:2], dtype=mask.dtype), mask], dim=1)
        x = x + self.position(torch.arange(x.shape[1]))[None]
        x = self.layer(x, src_key_padding_mask=mask == 0)
        return self.head(x), mask

    def _embed_batch(self, items: list[tuple[int, str, object]]) -> torch.Tensor:
        with_image = items[0][2] is not None
        room = self.config.max_positions - (self.patches_per_image if with_image else 0)
        ids = [self._ids(marker, text, room) for marker, text, _ in items]
        width = max(len(i) for i in ids)
        input_ids = torch.full((len(ids), width), PAD, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention_mask[row, : len(seq)] = 1
        pixels = torch.stack([self._pixels(image) for _, _, image in items]) if with_image else None
        with torch.inference_mode():
            hidden, mask = self(input_ids, attention_mask, pixels)
            embeddings = F.softplus(hidden) * mask.unsqueeze(-1)
            embeddings = F.normalize(embeddings, dim=-1)
        return embeddings.detach().cpu()

    def _extract(self, items: list[tuple[int, str, object]], batch_size: int) -> torch.Tensor:
        batches = [self._embed_batch(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
        return _pad_and_stack_embeddings(batches)

    def forward_queries(self, queries: list[str], batch_size: int = 8) -> torch.Tensor:
        self.calls.append(("forward_queries", len(queries)))
        return self._extract([(QUERY, q, None) for q in queries], batch_size)

    def forward_passages(self, images: list, batch_size: int = 8, **kwargs) -> torch.Tensor:
        self.calls.append(("forward_passages", len(images)))
        return self._extract([(PASSAGE, "", image) for image in images], batch_size)

    def forward_images(self, images: list, batch_size: int = 8, **kwargs) -> torch.Tensor:
        return self.forward_passages(images, batch_size)

    def forward_documents(self, corpus: list[dict], batch_size: int = 8) -> torch.Tensor:
        self.calls.append(("forward_documents", len(corpus)))
        return self._extract([(PASSAGE, doc.get("text", ""), doc["image"]) for doc in corpus], batch_size)

    def get_scores(self, query_embeddings, passage_embeddings, batch_size: int = 128) -> torch.Tensor:
        def as_padded(x) -> torch.Tensor:
            if isinstance(x, list):
                return _pad_and_stack_embeddings([t.unsqueeze(0) if t.ndim == 2 else t for t in x])
            return x

        qs, ps = as_padded(query_embeddings), as_padded(passage_embeddings)
        rows = []
        for i in range(0, qs.shape[0], batch_size):
            q = qs[i : i + batch_size]
            cols = [
                torch.einsum("bnd,csd->bcns", q, ps[j : j + batch_size]).max(dim=3)[0].sum(dim=2)
                for j in range(0, ps.shape[0], batch_size)
            ]
            rows.append(torch.cat(cols, dim=1))
        return torch.cat(rows, dim=0)

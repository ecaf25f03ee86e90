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

Image token layout (what pagesight's heatmaps rely on), copied from NVIDIA's public
``LlamaNemotronVLProcessor`` (``processing_llama_nemotron_vl.py``: ``dynamic_preprocess`` /
``find_closest_aspect_ratio``) and ``LlamaNemotronVLModel.extract_feature`` (pixel shuffle ending
row-major): the image is resized to ``cols x rows`` tiles of ``image_size`` pixels, the tiling chosen
by the "area and aspect ratio" rule among at most ``max_input_tiles`` tiles; the tiles are cropped
left to right, top to bottom, then (``use_thumbnail`` and more than one tile) a thumbnail of the whole
image follows; each tile gives ``(image_size // patch_size) ** 2`` patch tokens, row by row. A
document's sequence is ``[image tokens of every tile, marker, text bytes]``. With the default
``max_input_tiles=1`` an image is one 32x32 tile: 16 patch tokens, as before tiling existed.
``model.processor.process_documents`` returns the ``input_ids`` / ``attention_mask`` of that sequence,
image positions holding ``config.img_context_token_id``, as the real processor's ``<IMG_CONTEXT>``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

PAD, QUERY, PASSAGE, OFFSET = 0, 1, 2, 3
IMG_CONTEXT = 256 + OFFSET  # only in process_documents' input_ids: the forward pass embeds patches instead


class StandinColEmbedConfig(PretrainedConfig):
    model_type = "standin_colembed"

    def __init__(
        self,
        hidden_size: int = 32,
        num_heads: int = 2,
        image_size: int = 32,
        patch_size: int = 8,
        max_positions: int = 512,
        max_input_tiles: int = 1,
        use_thumbnail: bool = True,
        **kwargs,
    ) -> None:
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.image_size = image_size
        self.patch_size = patch_size
        self.max_positions = max_positions
        self.max_input_tiles = max_input_tiles
        self.use_thumbnail = use_thumbnail
        self.img_context_token_id = IMG_CONTEXT
        super().__init__(**kwargs)


def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
    """NVIDIA's rule: the tiling maximizing min(area ratio, 0.6) * aspect-ratio match (first wins)."""
    best_factor = float("-inf")
    best_ratio = (1, 1)
    area = width * height
    for ratio in target_ratios:
        target_aspect_ratio = ratio[0] / ratio[1]
        area_ratio = (ratio[0] * ratio[1] * image_size * image_size) / area
        match = min(target_aspect_ratio / aspect_ratio, aspect_ratio / target_aspect_ratio)
        factor = min(area_ratio, 0.6) * match
        if factor > best_factor:
            best_factor = factor
            best_ratio = ratio
    return best_ratio


def dynamic_preprocess(image, min_num=1, max_num=6, image_size=448, use_thumbnail=False):
    """NVIDIA's tiling: resize to cols x rows tiles, crop them row by row, then an optional thumbnail."""
    orig_width, orig_height = image.size
    aspect_ratio = orig_width / orig_height
    target_ratios = sorted(
        {
            (i, j)
            for n in range(min_num, max_num + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_num <= i * j <= max_num
        },
        key=lambda x: x[0] * x[1],
    )
    cols, rows = find_closest_aspect_ratio(aspect_ratio, target_ratios, orig_width, orig_height, image_size)
    target_width, target_height = image_size * cols, image_size * rows
    resized = image.resize((target_width, target_height))
    tiles = []
    for i in range(cols * rows):
        box = (
            (i % cols) * image_size,
            (i // cols) * image_size,
            (i % cols + 1) * image_size,
            (i // cols + 1) * image_size,
        )
        tiles.append(resized.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


class StandinProcessor:
    """The attributes and ``process_documents`` of NVIDIA's ``LlamaNemotronVLProcessor`` that matter here."""

    dynamic_image_size = True

    def __init__(self, config: StandinColEmbedConfig) -> None:
        self.image_size = config.image_size
        self.max_input_tiles = config.max_input_tiles
        self.use_thumbnail = config.use_thumbnail
        self.num_image_token = (config.image_size // config.patch_size) ** 2
        self.config = config

    def tiles(self, image) -> list:
        return dynamic_preprocess(
            image.convert("RGB"),
            max_num=self.max_input_tiles,
            image_size=self.image_size,
            use_thumbnail=self.use_thumbnail,
        )

    def process_documents(self, documents: list[dict], **kwargs) -> dict:
        seqs = []
        for doc in documents:
            image = doc.get("image")
            n_image = len(self.tiles(image)) * self.num_image_token if image is not None else 0
            text_room = self.config.max_positions - n_image
            text = [b + OFFSET for b in doc.get("text", "").encode("utf-8")][: max(text_room - 1, 0)]
            seqs.append([IMG_CONTEXT] * n_image + [PASSAGE] + text)
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
        attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention_mask[row, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


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
        self.processor = StandinProcessor(config)
        self.post_init()

    @property
    def patches_per_image(self) -> int:
        """Patch tokens per tile (one tile per image with the default ``max_input_tiles=1``)."""
        return (self.config.image_size // self.config.patch_size) ** 2

    def _pixels(self, image) -> torch.Tensor:
        """The image's tiles as ``(n_tiles, 3, image_size, image_size)``."""
        arrays = [np.asarray(tile, dtype=np.float32) / 255.0 for tile in self.processor.tiles(image)]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def _ids(self, marker: int, text: str, room: int) -> list[int]:
        return [marker] + [b + OFFSET for b in text.encode("utf-8")][: max(room - 1, 0)]

    def forward(self, input_ids, attention_mask, pixel_values=None):
        """``pixel_values``: one ``(n_tiles, 3, size, size)`` tensor per row, or None (text only)."""
        if pixel_values is None:
            x, mask = self.embed(input_ids), attention_mask
        else:
            rows, masks = [], []
            for row, tiles in enumerate(pixel_values):
                # patch tokens of each tile row by row (conv output flattened h-major), tile after tile
                patches = self.patch(tiles).flatten(2).transpose(1, 2).reshape(-1, self.config.hidden_size)
                keep = attention_mask[row]
                rows.append(torch.cat([patches, self.embed(input_ids[row])]))
                masks.append(torch.cat([torch.ones(patches.shape[0], dtype=keep.dtype), keep]))
            width = max(r.shape[0] for r in rows)
            x = torch.zeros(len(rows), width, self.config.hidden_size)
            mask = torch.zeros(len(rows), width, dtype=attention_mask.dtype)
            for row, (r, m) in enumerate(zip(rows, masks, strict=True)):
                x[row, : r.shape[0]] = r
                mask[row, : m.shape[0]] = m
        x = x + self.position(torch.arange(x.shape[1]))[None]
        x = self.layer(x, src_key_padding_mask=mask == 0)
        return self.head(x), mask

    def _embed_batch(self, items: list[tuple[int, str, object]]) -> torch.Tensor:
        with_image = items[0][2] is not None
        pixels = [self._pixels(image) for _, _, image in items] if with_image else None
        n_image = [p.shape[0] * self.patches_per_image for p in pixels] if pixels else [0] * len(items)
        ids = [
            self._ids(marker, text, self.config.max_positions - n)
            for (marker, text, _), n in zip(items, n_image, strict=True)
        ]
        width = max(len(i) for i in ids)
        input_ids = torch.full((len(ids), width), PAD, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention_mask[row, : len(seq)] = 1
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

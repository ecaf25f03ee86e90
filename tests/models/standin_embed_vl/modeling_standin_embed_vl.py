"""A tiny stand-in for NVIDIA's embed-vl remote code (``llama-nemotron-embed-vl-1b-v2``).

Loaded by the tests through the real ``AutoModel.from_pretrained(folder, trust_remote_code=True)``
path. It has the public surface the model card uses:

- ``model.processor`` with ``p_max_length``, ``max_input_tiles`` and ``use_thumbnail`` (and
  ``q_max_length`` for queries);
- ``model.encode_queries(list[str])`` -> tensor ``(n, hidden)``; the remote code prefixes queries
  with ``"query: "``;
- ``model.encode_documents(images=None, texts=None)`` -> tensor ``(n, hidden)``; documents get
  ``"passage: "``; images alone, texts alone, or one image and one text per document.

A real (tiny, random-weight) torch network: byte tokens + learned positions for text, an 8x8 patch
convolution over every image tile, mean pooling and a linear head. An image is cut into
``max_input_tiles`` horizontal tiles plus, with ``use_thumbnail``, the whole image, so the
processor settings change the vectors. Text is cut to ``p_max_length`` (``q_max_length`` for
queries) bytes. Outputs are NOT normalized (the real model normalizes; pagesight must not rely on it).

Every call is recorded in ``model.calls``: a dict with the method, the modality
(``"query"``, ``"text"``, ``"image"``, ``"image_text"``), the number of inputs, the processor
settings in effect and the texts exactly as they reached the tokenizer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

PAD, OFFSET = 0, 1
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "


class StandinEmbedVLConfig(PretrainedConfig):
    model_type = "standin_embed_vl"

    def __init__(
        self,
        hidden_size: int = 16,
        image_size: int = 16,
        patch_size: int = 8,
        max_positions: int = 16384,
        **kwargs: Any,
    ) -> None:
        self.hidden_size = hidden_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.max_positions = max_positions
        super().__init__(**kwargs)


class StandinEmbedVLProcessor:
    """Holds the settings the real processor exposes; the defaults differ from what pagesight sets."""

    def __init__(self) -> None:
        self.p_max_length = 4096
        self.q_max_length = 512
        self.max_input_tiles = 1
        self.use_thumbnail = False

    def settings(self) -> dict[str, Any]:
        return {
            "p_max_length": self.p_max_length,
            "q_max_length": self.q_max_length,
            "max_input_tiles": self.max_input_tiles,
            "use_thumbnail": self.use_thumbnail,
        }


class StandinEmbedVLModel(PreTrainedModel):
    config_class = StandinEmbedVLConfig
    base_model_prefix = "standin"
    _supports_sdpa = True

    def __init__(self, config: StandinEmbedVLConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(256 + OFFSET, h, padding_idx=PAD)
        self.position = nn.Embedding(config.max_positions, h)
        self.patch = nn.Conv2d(3, h, kernel_size=config.patch_size, stride=config.patch_size)
        self.head = nn.Linear(h, h)
        self.processor = StandinEmbedVLProcessor()
        self.calls: list[dict[str, Any]] = []
        self.post_init()

    # -- the network ---------------------------------------------------------------------------

    def _tiles(self, image: Image.Image) -> torch.Tensor:
        if not isinstance(image, Image.Image):
            raise TypeError(f"images must be PIL images, got {type(image).__name__}")
        size = self.config.image_size
        width, height = image.size
        n = max(1, int(self.processor.max_input_tiles))
        tiles = [
            image.crop((0, height * i // n, width, max(height * (i + 1) // n, height * i // n + 1)))
            for i in range(n)
        ]
        if self.processor.use_thumbnail and n > 1:
            tiles.append(image)
        arrays = [np.asarray(t.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0 for t in tiles]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.dtype)

    def _text_tokens(self, text: str, limit: int) -> torch.Tensor:
        ids = [b + OFFSET for b in text.encode("utf-8")][: max(int(limit), 1)]
        return torch.tensor(ids or [PAD], dtype=torch.long)

    def _embed_one(self, text: str | None, image: Image.Image | None, limit: int) -> torch.Tensor:
        parts = []
        if image is not None:
            patches = self.patch(self._tiles(image)).flatten(2).transpose(1, 2)
            parts.append(patches.reshape(-1, self.config.hidden_size))
        if text is not None:
            ids = self._text_tokens(text, limit)
            x = self.embed(ids)
            parts.append(x)
        x = torch.cat(parts, dim=0)
        x = x + self.position(torch.arange(x.shape[0]) % self.config.max_positions)
        return self.head(torch.tanh(x).mean(dim=0))

    def _record(self, method: str, modality: str, texts: list[str] | None, n: int) -> None:
        self.calls.append(
            {"method": method, "modality": modality, "n": n, "texts": texts, **self.processor.settings()}
        )

    # -- the remote-code API ---------------------------------------------------------------------

    def encode_queries(self, queries: list[str], **kwargs: Any) -> torch.Tensor:
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise TypeError("queries must be a list of strings")
        texts = [QUERY_PREFIX + q for q in queries]
        self._record("encode_queries", "query", texts, len(queries))
        return torch.stack([self._embed_one(t, None, self.processor.q_max_length) for t in texts])

    def encode_documents(
        self, images: list[Image.Image] | None = None, texts: list[str] | None = None, **kwargs: Any
    ) -> torch.Tensor:
        if images is None and texts is None:
            raise ValueError("encode_documents needs images, texts or both")
        if images is not None and texts is not None and len(images) != len(texts):
            raise ValueError("images and texts must have the same length")
        prefixed = [PASSAGE_PREFIX + t for t in texts] if texts is not None else None
        if images is None:
            modality, n = "text", len(texts or [])
        elif texts is None:
            modality, n = "image", len(images)
        else:
            modality, n = "image_text", len(images)
        self._record("encode_documents", modality, prefixed, n)
        rows = []
        for i in range(n):
            image = images[i] if images is not None else None
            text = prefixed[i] if prefixed is not None else (PASSAGE_PREFIX if image is None else None)
            rows.append(self._embed_one(text, image, self.processor.p_max_length))
        return torch.stack(rows)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used by pagesight
        raise NotImplementedError("use encode_queries / encode_documents")


def l2(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)

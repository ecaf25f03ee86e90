"""A tiny stand-in for the processor of ``nvidia/llama-nemotron-rerank-vl-1b-v2`` (remote code).

Loaded by the tests through the real ``AutoProcessor.from_pretrained(folder, trust_remote_code=True,
max_input_tiles=6, use_thumbnail=True, rerank_max_length=2048)`` path: ``processor_config.json`` in
the folder names this class under ``auto_map["AutoProcessor"]``, transformers imports this file and
calls the class's own ``from_pretrained`` with every keyword argument.

What it copies from the real ``LlamaNemotronVLRerankProcessor``:

- the attributes ``max_input_tiles``, ``use_thumbnail``, ``rerank_max_length`` and ``padding``, set
  from ``from_pretrained``'s keyword arguments (defaults from ``processor_config.json``);
- ``process_queries_documents_crossencoder([{"question", "doc_text", "doc_image"}, ...], **kwargs)``
  returning ``{"input_ids", "attention_mask", "pixel_values"}`` tensors; ``doc_image`` is a PIL
  image or ``""`` / ``None`` for a text-only document; the real prompt ``"{question} \\n {doc_text}"``
  with the image first (``"<image> ..."``); left padding; right truncation to ``max_length`` (a
  keyword argument) or else the ``rerank_max_length`` attribute; ``pixel_values`` holds the tiles of
  the images in row order (``"flat_tiles"``), bfloat16, SigLIP-normalized to [-1, 1], or ``None``
  when no document has an image.

What it simplifies: one 16x16 tile per image, and "tokens" are hashed lower-case words
(``query words``, ``SEP``, ``document words``), so the stand-in model can count shared words.

Every call is recorded in ``calls``: each example's form (``"text"``, ``"image"``, ``"image_text"``)
and the max length in effect.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

PAD, SEP, IMG, OFFSET = 0, 1, 2, 3
TILE = 16
_WORD = re.compile(r"\w+")


class StandinRerankVLProcessor:
    """The stand-in processor (see the module docstring)."""

    def __init__(
        self,
        vocab_size: int = 4096,
        max_input_tiles: int = 2,
        use_thumbnail: bool = False,
        rerank_max_length: int | None = None,
        padding: bool | str = True,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.max_input_tiles = max_input_tiles
        self.use_thumbnail = use_thumbnail
        self.rerank_max_length = rerank_max_length
        self.padding = padding
        self.init_kwargs: dict[str, Any] = {}
        self.calls: list[dict[str, Any]] = []

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str, **kwargs: Any) -> StandinRerankVLProcessor:
        path = Path(pretrained_model_name_or_path) / "processor_config.json"
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        options = {k: v for k, v in saved.items() if k not in ("auto_map", "processor_class")}
        given = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        options.update(given)
        processor = cls(**options)
        processor.init_kwargs = given
        return processor

    @classmethod
    def register_for_auto_class(cls, auto_class: str = "AutoProcessor") -> None:
        """Called by ``AutoProcessor`` on remote-code classes; nothing to register here."""

    def _word_ids(self, text: str) -> list[int]:
        span = self.vocab_size - OFFSET
        return [OFFSET + zlib.crc32(w.lower().encode("utf-8")) % span for w in _WORD.findall(text)]

    @staticmethod
    def _tile(image: Any) -> torch.Tensor:
        rgb = image.convert("RGB").resize((TILE, TILE))
        data = torch.from_numpy(np.asarray(rgb, dtype=np.float32).copy())  # (TILE, TILE, 3)
        pixels = data.permute(2, 0, 1) / 255.0
        return ((pixels - 0.5) / 0.5).to(torch.bfloat16)

    def process_queries_documents_crossencoder(self, features: list[dict[str, Any]], **kwargs: Any) -> dict:
        max_length = kwargs.get("max_length") or self.rerank_max_length
        rows: list[list[int]] = []
        tiles: list[torch.Tensor] = []
        forms: list[str] = []
        for feature in features:
            image = feature["doc_image"]
            text = feature["doc_text"]
            has_image = image is not None and not (isinstance(image, str) and image == "")
            if has_image and isinstance(image, str):
                raise ValueError(f"the stand-in takes PIL images, got the path {image!r}")
            row = [IMG] if has_image else []
            row += self._word_ids(feature["question"]) + [SEP] + self._word_ids(text)
            if max_length is not None:
                row = row[:max_length]
            rows.append(row)
            if has_image:
                tiles.append(self._tile(image))
            forms.append(("image_text" if text else "image") if has_image else "text")
        self.calls.append({"forms": forms, "max_length": max_length})

        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding, as the real processor
            if row:
                input_ids[i, width - len(row) :] = torch.tensor(row)
                attention_mask[i, width - len(row) :] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": torch.stack(tiles) if tiles else None,
        }

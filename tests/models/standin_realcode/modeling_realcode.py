"""Stand-ins that reproduce what NVIDIA's remote code does on real weights (issue 17).

Each class keeps the public surface pagesight calls and adds one quirk public deployers hit:

- :class:`RealcodeV1Config` / :class:`RealcodeV1Model` (ColEmbed v1): a composite config that
  declares ``is_composition`` (the pre-4.52 name) and whose ``to_dict`` dereferences
  ``vision_config``; transformers builds a default instance (no sub-configs) while printing the
  config, so loading crashes ("visual_config crash", MTEB issue #3917). ``forward_queries`` /
  ``forward_passages`` return a ``list[Tensor]`` of UN-normalized rows. The processor cuts text at
  ``q_max_length``.
- :class:`RealcodeQwenModel` (ColEmbed 4b/8b-v2, Qwen3-VL): ``_get_processor()`` loads
  ``AutoProcessor.from_pretrained(config._name_or_path, trust_remote_code=True)`` (no revision)
  the first time it is needed; every call builds ``DataLoader(..., num_workers=8)``; images get an
  ``image_grid_thw``; a ``None`` image crashes; text is cut at ``q_max_length``.
- :class:`RealcodeEmbedVLModel` (embed-vl): per config, ``__init__`` forces
  ``llm_config._attn_implementation`` (as some revisions do, before the real Llama is built),
  loads an inner processor unpinned, or ``encode_*`` calls a mask helper with an argument it no
  longer takes (the ``create_bidirectional_mask`` / ``input_embeds`` change of transformers 5).

Companion files (copied by ``realcode_builders.py``) add a module-top ``import flash_attn`` (v1)
or ``import datasets`` (Qwen v2) in front of these classes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from transformers import AutoProcessor, LlamaConfig, LlamaModel, PretrainedConfig, PreTrainedModel

OFFSET = 3
TINY_LLAMA = {
    "vocab_size": 64,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}


class ByteTokenizer:
    """One token per UTF-8 byte (what ``processor.tokenizer`` is to pagesight: a callable)."""

    def __call__(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> dict[str, list[int]]:
        return {"input_ids": [b + OFFSET for b in text.encode("utf-8")]}


class TextProcessor:
    """``q_max_length`` + ``tokenizer``, as NVIDIA's processors expose them."""

    def __init__(self, q_max_length: int, tokenizer: Any = None) -> None:
        self.q_max_length = q_max_length
        self.tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        self.max_input_tiles = 6
        self.use_thumbnail = False

    def ids(self, text: str) -> list[int]:
        """The query path's ids: cut at ``q_max_length`` (the real processor truncates there)."""
        ids = [int(i) % 250 + OFFSET for i in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        return ids[: self.q_max_length] or [OFFSET]


def _rows(model: Any, ids: list[int]) -> torch.Tensor:
    x = model.embed(torch.tensor(ids, dtype=torch.long)) + model.position(torch.arange(len(ids)))
    return model.head(x)


# -- ColEmbed v1 ---------------------------------------------------------------------------------


class RealcodeV1Config(PretrainedConfig):
    model_type = "realcode_colembed_v1"
    is_composition = True  # transformers >= 4.52 reads has_no_defaults_at_init instead

    def __init__(
        self, vision_config: Any = None, llm_config: Any = None, q_max_length: int = 64, **kwargs: Any
    ):
        self.vision_config = (
            PretrainedConfig(**vision_config) if isinstance(vision_config, dict) else vision_config
        )
        self.llm_config = PretrainedConfig(**llm_config) if isinstance(llm_config, dict) else llm_config
        self.q_max_length = q_max_length
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = copy.deepcopy(self.__dict__)
        output["vision_config"] = self.vision_config.to_dict()  # crashes on a default instance
        output["llm_config"] = self.llm_config.to_dict()
        output["model_type"] = self.__class__.model_type
        return output


class RealcodeV1Model(PreTrainedModel):
    config_class = RealcodeV1Config
    base_model_prefix = "realcode"
    _supports_sdpa = True

    def __init__(self, config: RealcodeV1Config) -> None:
        super().__init__(config)
        h = int(config.llm_config.hidden_size)
        self.embed = nn.Embedding(256 + OFFSET, h)
        self.position = nn.Embedding(4096, h)
        self.patch = nn.Conv2d(3, h, kernel_size=8, stride=8)
        self.head = nn.Linear(h, h)
        self.processor = TextProcessor(config.q_max_length)
        self.calls: list[tuple[str, list[int]]] = []
        self.post_init()

    def forward_queries(self, queries: list[str], batch_size: int = 8) -> list[torch.Tensor]:
        self.calls.append(("forward_queries", [len(self.processor.ids(q)) for q in queries]))
        with torch.inference_mode():
            return [_rows(self, self.processor.ids(q)) * 3.0 for q in queries]  # not normalized

    def forward_passages(self, images: list, batch_size: int = 8) -> list[torch.Tensor]:
        self.calls.append(("forward_passages", [len(images)]))
        out = []
        with torch.inference_mode():
            for image in images:
                pixels = torch.tensor(
                    list(image.convert("RGB").resize((16, 16)).getdata()), dtype=torch.float32
                )
                pixels = pixels.reshape(16, 16, 3).permute(2, 0, 1)[None] / 255.0
                out.append(self.patch(pixels).flatten(2).transpose(1, 2)[0] * 2.0 + 0.1)
        return out


# -- ColEmbed 4b/8b-v2 (Qwen3-VL) -------------------------------------------------------------------


class RealcodeQwenConfig(PretrainedConfig):
    model_type = "realcode_colembed_qwen"

    def __init__(self, hidden_size: int = 16, q_max_length: int = 64, merge_size: int = 2, **kwargs: Any):
        self.hidden_size = hidden_size
        self.q_max_length = q_max_length
        self.merge_size = merge_size
        super().__init__(**kwargs)


class RealcodeQwenModel(PreTrainedModel):
    config_class = RealcodeQwenConfig
    base_model_prefix = "realcode"
    _supports_sdpa = True

    def __init__(self, config: RealcodeQwenConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(256 + OFFSET, h)
        self.position = nn.Embedding(4096, h)
        self.patch = nn.Conv2d(3, h, kernel_size=8, stride=8)
        self.head = nn.Linear(h, h)
        self._processor: Any = None
        self.loader_workers: list[int] = []
        self.calls: list[tuple[str, list[int]]] = []
        self.post_init()

    def _get_processor(self) -> TextProcessor:
        if self._processor is None:
            # as the real code: the processor of config._name_or_path, no revision
            inner = AutoProcessor.from_pretrained(self.config._name_or_path, trust_remote_code=True)
            self._processor = TextProcessor(self.config.q_max_length, getattr(inner, "tokenizer", inner))
        return self._processor

    def _loader(self, items: list, batch_size: int) -> DataLoader:
        loader = DataLoader(items, batch_size=batch_size, num_workers=8, collate_fn=list)
        self.loader_workers.append(loader.num_workers)
        return loader

    def _embed(self, ids: list[int]) -> torch.Tensor:
        return F.normalize(F.softplus(_rows(self, ids)), dim=-1)

    def forward_queries(self, queries: list[str], batch_size: int = 8) -> torch.Tensor:
        processor = self._get_processor()
        self.loader_workers.clear()
        out = []
        with torch.inference_mode():
            for batch in self._loader(list(queries), batch_size):
                ids = [processor.ids(q) for q in batch]
                self.calls.append(("forward_queries", [len(i) for i in ids]))
                out.extend(self._embed(i) for i in ids)
        width = max(t.shape[0] for t in out)
        padded = torch.zeros(len(out), width, self.config.hidden_size)
        for row, t in enumerate(out):
            padded[row, : t.shape[0]] = t
        return padded

    def image_grid_thw(self, image: Any) -> torch.Tensor:
        width, height = image.size  # a None image crashes here, as the real processor does
        return torch.tensor([1, max(2, height // 8), max(2, width // 8)])

    def forward_images(self, images: list, batch_size: int = 8) -> torch.Tensor:
        self._get_processor()
        rows = []
        with torch.inference_mode():
            for batch in self._loader(list(images), batch_size):
                for image in batch:
                    t, gh, gw = (int(v) for v in self.image_grid_thw(image))
                    n = (gh // self.config.merge_size) * (gw // self.config.merge_size) * t
                    ids = [(i % 250) + OFFSET for i in range(n)]
                    rows.append(self._embed(ids))
        width = max(r.shape[0] for r in rows)
        padded = torch.zeros(len(rows), width, self.config.hidden_size)
        for row, r in enumerate(rows):
            padded[row, : r.shape[0]] = r
        return padded


# -- embed-vl -----------------------------------------------------------------------------------


class RealcodeEmbedVLConfig(PretrainedConfig):
    model_type = "realcode_embed_vl"
    has_no_defaults_at_init = True

    def __init__(
        self,
        llm_config: Any = None,
        force_llm_attn: str | None = None,
        inner_processor: bool = False,
        encode_typeerror: bool = False,
        **kwargs: Any,
    ):
        self.llm_config = LlamaConfig(**(llm_config if isinstance(llm_config, dict) else TINY_LLAMA))
        self.force_llm_attn = force_llm_attn
        self.inner_processor = inner_processor
        self.encode_typeerror = encode_typeerror
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["llm_config"] = self.llm_config.to_dict()
        return output


class EmbedVLProcessor:
    def __init__(self) -> None:
        self.p_max_length = 4096
        self.q_max_length = 512
        self.max_input_tiles = 1
        self.use_thumbnail = False
        self.tokenizer: Any = ByteTokenizer()


def _create_mask(config: Any, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The transformers-5 signature the old revisions call with ``input_embeds=`` (a TypeError)."""
    return attention_mask


class RealcodeEmbedVLModel(PreTrainedModel):
    config_class = RealcodeEmbedVLConfig
    base_model_prefix = "realcode"
    _supports_sdpa = True

    def __init__(self, config: RealcodeEmbedVLConfig) -> None:
        super().__init__(config)
        if config.force_llm_attn:
            # what some revisions do in __init__, whatever attn_implementation the caller asked for
            config.llm_config._attn_implementation = config.force_llm_attn
        self.language_model = LlamaModel(config.llm_config)
        self.embed = nn.Embedding(256 + OFFSET, config.llm_config.hidden_size)
        self.processor = EmbedVLProcessor()
        if config.inner_processor:
            inner = AutoProcessor.from_pretrained(config._name_or_path, trust_remote_code=True)  # no revision
            self.processor.tokenizer = getattr(inner, "tokenizer", inner)
        self.post_init()

    def _encode(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for text in texts:
            ids = torch.tensor([[b % 60 + 1 for b in text.encode("utf-8")][:64] or [1]])
            mask = torch.ones_like(ids)
            if self.config.encode_typeerror:
                mask = _create_mask(self.config, input_embeds=ids, attention_mask=mask)  # type: ignore[call-arg]
            hidden = self.language_model(input_ids=ids, attention_mask=mask).last_hidden_state
            rows.append(hidden[0].mean(dim=0))
        return torch.stack(rows)

    def encode_queries(self, queries: list[str]) -> torch.Tensor:
        with torch.inference_mode():
            return self._encode(["query: " + q for q in queries])

    def encode_documents(self, images: list | None = None, texts: list[str] | None = None) -> torch.Tensor:
        with torch.inference_mode():
            n = len(images) if images is not None else len(texts or [])
            return self._encode(["passage: " + (texts[i] if texts else "") for i in range(n)])

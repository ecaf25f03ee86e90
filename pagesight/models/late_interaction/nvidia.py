"""The NVIDIA ColEmbed backend: the models' own remote code, loaded with ``AutoModel``.

The remote code (``llama-nemoretriever-colembed-*-v1``, ``*-colembed-vl-*-v2``) exposes
``forward_queries(list[str], batch_size)``, ``forward_passages(list[PIL.Image], batch_size)``
(``forward_images`` in newer revisions) and ``forward_documents([{"image", "text"}], batch_size)``.
Each returns ONE CPU tensor ``(n_inputs, max_tokens, hidden)``: per batch the last hidden state is
multiplied by the attention mask and L2-normalized, then the batches are zero-padded to the longest
sequence and concatenated. So padding is marked by all-zero rows, wherever the tokenizer put it;
:func:`token_matrices` drops those rows and renormalizes in float32 (bf16 rows are only ~unit).

``get_scores`` scores the zero-padded tensors directly; a padded zero row then counts as a document
token of similarity 0, so a query token whose real similarities are all negative scores 0 there
instead of its true maximum. pagesight scores the stripped matrices, which is exact MaxSim.

:meth:`NvidiaColEmbedBackend.image_token_layout` places an image's tokens on the image (for
heatmaps): it runs the model's own processor (``process_documents``) on the image, finds the image
placeholder tokens in the sequence, and lays them out with the processor's rule: Qwen2/3-VL patch
grids (``image_grid_thw``, the 4B/8B v2 models) or Eagle / Llama-Nemotron-VL dynamic tiles
(``image_size``, ``max_input_tiles``, ``use_thumbnail``, ``num_image_token``). The count of
placeholders must match the rule and the sequence length is reported, so a model that does things
differently yields no layout rather than a wrong one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from pagesight.errors import ModelNotAvailableError
from pagesight.models._nvidia_compat import encode_error, serial_dataloaders
from pagesight.models._remote import TRANSFORMERS_PINS, load_pretrained
from pagesight.models._windows import Span, pack_windows
from pagesight.models.base import ModelBackend
from pagesight.models.late_interaction._backend import normalize_rows
from pagesight.models.late_interaction.layout import (
    ImageTokenLayout,
    TokenGrid,
    merged_patch_grid,
    tiled_grids,
)

__all__ = ["NvidiaColEmbedBackend", "token_matrices", "TRANSFORMERS_PINS", "TILING"]

logger = logging.getLogger(__name__)

TILING: dict[str, tuple[int, bool]] = {"nvidia/llama-nemotron-colembed-vl-3b-v2": (8, True)}
"""Hub id -> ``(max_input_tiles, use_thumbnail)`` set on the processor after loading: the 3b-v2
card's recommendation, as NeMo-Retriever's retrieval-bench quotes and applies it."""

_QUERY_MARGIN = 16  # tokens of a window kept free for the "query: " prefix and special tokens
_WINDOW_OVERLAP = 32
_WORD = re.compile(r"\S+\s*")


def token_matrices(output: Any, count: int, *, what: str = "input") -> list[np.ndarray]:
    """Split a remote-code output into one float32 unit-row matrix per input, padding dropped.

    Args:
        output: a padded tensor ``(count, max_tokens, dim)``, a list of ``(tokens, dim)`` (or
            ``(1, tokens, dim)``) tensors, or a ``(tokens, dim)`` tensor when ``count`` is 1.
        count: how many inputs produced it.
        what: names the inputs in error messages.
    """
    if isinstance(output, (list, tuple)):
        items = list(output)
    elif getattr(output, "ndim", None) == 3:
        items = [output[i] for i in range(output.shape[0])]
    elif getattr(output, "ndim", None) == 2 and count == 1:
        items = [output]
    else:
        raise ModelNotAvailableError(
            f"the model's remote code returned {type(output).__name__} with shape "
            f"{getattr(output, 'shape', None)}; expected (n_inputs, tokens, dim) token embeddings"
        )
    if len(items) != count:
        raise ModelNotAvailableError(f"the model returned {len(items)} token matrices for {count} {what}s")
    out = []
    for i, item in enumerate(items):
        if getattr(item, "ndim", None) == 3 and item.shape[0] == 1:
            item = item[0]
        out.append(normalize_rows(item, drop_zero_rows=True, what=f"{what} {i}"))
    return out


class NvidiaColEmbedBackend(ModelBackend):
    """Loads an NVIDIA ColEmbed model (or a folder with the same remote-code methods) and calls it.

    Takes the spec and :class:`~pagesight.models.base.LoadOptions` (``trust_remote_code`` must be
    ``True``: the models are remote code; ``attn_implementation=None`` picks ``flash_attention_2``
    when flash-attn imports on CUDA, else ``sdpa``, and falls back to the model's default if the
    model refuses it).
    """

    name = "nvidia"

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        loaded = load_pretrained(self, "AutoModel", log=logger)
        model = loaded.model
        if not callable(getattr(model, "forward_queries", None)):
            raise ModelNotAvailableError(
                f"{loaded.source} loaded, but it has no forward_queries() method: it is not an NVIDIA "
                "ColEmbed-style model; use backend='sentence-transformers' or 'token-embeddings'"
            )
        tiling = TILING.get(self.spec.hf_id or "")
        processor = getattr(model, "processor", None)
        if tiling is not None and processor is not None:
            processor.max_input_tiles, processor.use_thumbnail = tiling
        serial_dataloaders(model)  # the Qwen3-VL code's 8-worker DataLoader per call: 0 workers
        self._model = model

    # -- capabilities -----------------------------------------------------------------------------

    @property
    def dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        config = self.model.config
        for holder in (config, getattr(config, "text_config", None), getattr(config, "llm_config", None)):
            value = getattr(holder, "hidden_size", None) if holder is not None else None
            if isinstance(value, int):
                return value
        return int(self.encode_queries(["dimension probe"], 1)[0].shape[1])

    @property
    def supports_images(self) -> bool:
        if self._model is None:
            return True
        return callable(self._image_method())

    @property
    def supports_image_text(self) -> bool:
        if self._model is None:
            return True
        return callable(getattr(self._model, "forward_documents", None))

    def _image_method(self) -> Any:
        model = self.model
        return getattr(model, "forward_passages", None) or getattr(model, "forward_images", None)

    # -- encoding ---------------------------------------------------------------------------------

    def _call(self, method: Any, inputs: list[Any], what: str) -> list[np.ndarray]:
        import torch

        try:
            with self._lock, torch.inference_mode():
                output = method(inputs, batch_size=len(inputs))
        except TypeError as e:
            translated = encode_error(e, self.spec, self.model_revision())
            if translated is None:
                raise
            raise translated from e
        return token_matrices(output, len(inputs), what=what)

    def encode_queries(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        return self._call(self.model.forward_queries, texts, "query")

    def encode_documents(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        """Token matrices of text documents; a text longer than the query budget is windowed.

        NVIDIA's own deployments (MTEB, the truss example) embed text passages with
        ``forward_queries`` (the remote code has no text-passage method), whose processor cuts at
        ``q_max_length`` (512 in the v2 processor). A longer text is split into windows of whole
        words that fit, each encoded, their token rows concatenated: nothing is cut.
        """
        pieces: list[str] = []
        owners: list[int] = []
        for owner, text in enumerate(texts):
            for piece in self._text_windows(text):
                pieces.append(piece)
                owners.append(owner)
        matrices = self._call(self.model.forward_queries, pieces, "document")
        grouped: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, matrix in zip(owners, matrices, strict=True):
            grouped[owner].append(matrix)
        return [np.concatenate(g, axis=0) for g in grouped]

    def _text_budget(self) -> tuple[Any, int] | None:
        """``(tokenizer, tokens a text window may hold)`` from the processor's ``q_max_length``."""
        model = self.model
        processor = _processor(model)
        limit = _setting("q_max_length", processor, model, model.config)
        tokenizer = getattr(processor, "tokenizer", None)
        if not isinstance(limit, int) or tokenizer is None or not callable(tokenizer):
            return None
        return tokenizer, max(8, limit - _QUERY_MARGIN)

    def _text_windows(self, text: str) -> list[str]:
        budget = self._text_budget()
        if budget is None or len(text) < 8:
            return [text]
        tokenizer, room = budget

        def count(piece: str) -> int:
            return len(tokenizer(piece, add_special_tokens=False)["input_ids"])

        with self._lock:  # fast tokenizers are not thread-safe
            if count(text) <= room:
                return [text]
            words = [Span(m.start(), m.end(), max(1, count(m.group()))) for m in _WORD.finditer(text)]
        if not words:
            return [text]
        windows = pack_windows(words, room, min(_WINDOW_OVERLAP, room // 4))
        logger.info("%s: a text of %d words encoded as %d windows", self.spec.alias, len(words), len(windows))
        return [text[w.start : w.end] for w in windows]

    def encode_images(self, images: list[Any], batch_size: int) -> list[np.ndarray]:
        method = self._image_method()
        if method is None:
            raise ModelNotAvailableError(f"{self.spec.alias} has neither forward_passages nor forward_images")
        return self._call(method, images, "image")

    def encode_image_texts(self, pairs: list[tuple[Any, str]], batch_size: int) -> list[np.ndarray]:
        method = getattr(self.model, "forward_documents", None)
        if method is None:
            raise ModelNotAvailableError(f"{self.spec.alias} has no forward_documents for image+text pages")
        docs = [{"image": image, "text": text} for image, text in pairs]
        return self._call(method, docs, "page")

    # -- token layout -----------------------------------------------------------------------------

    def image_token_layout(self, image: Any) -> ImageTokenLayout | None:
        """Where the tokens :meth:`encode_images` returns for ``image`` lie on it, or ``None``.

        ``None`` (with the reason logged at INFO) when the model exposes no ``process_documents``,
        no image placeholder token, a grid rule not known here, or placeholders whose count does
        not match the rule.
        """
        model = self.model
        processor = _processor(model)
        process = getattr(model, "process_documents", None) or getattr(processor, "process_documents", None)
        if not callable(process):
            logger.info("%s: no process_documents() to place image tokens with", self.spec.alias)
            return None
        with self._lock:
            inputs = process([{"image": image, "text": ""}])
        ids = _first_row(inputs.get("input_ids"))
        mask = _first_row(inputs.get("attention_mask"))
        if ids is None:
            logger.info("%s: process_documents() returned no input_ids", self.spec.alias)
            return None
        if mask is None:
            mask = [1] * len(ids)
        kept = [int(t) for t, m in zip(ids, mask, strict=True) if int(m)]
        token_id = _image_token_id(model, processor)
        positions = [i for i, t in enumerate(kept) if t == token_id]
        if token_id is None or not positions:
            logger.info("%s: no image placeholder tokens in the processed sequence", self.spec.alias)
            return None
        first = positions[0]
        if positions != list(range(first, first + len(positions))):
            logger.info("%s: the image tokens are not one run; layout unknown", self.spec.alias)
            return None
        width, height = image.size
        grids = self._grids(inputs, processor, model, width, height, first)
        if grids is None:
            return None
        if sum(g.count for g in grids) != len(positions):
            logger.info(
                "%s: %d image tokens, but the tiling rule gives %d; layout unknown",
                self.spec.alias,
                len(positions),
                sum(g.count for g in grids),
            )
            return None
        return ImageTokenLayout(grids=tuple(grids), tokens=len(kept))

    def _grids(
        self, inputs: Any, processor: Any, model: Any, width: int, height: int, first: int
    ) -> list[TokenGrid] | None:
        thw = _first_row(inputs.get("image_grid_thw"))
        if thw is not None:  # Qwen2/3-VL: one patch grid over the whole image, merged merge x merge
            image_processor = getattr(processor, "image_processor", None)
            merge = _setting("merge_size", image_processor, processor, model.config)
            t, grid_h, grid_w = (int(v) for v in thw)
            if t != 1 or not isinstance(merge, int):
                logger.info("%s: image grid %s with merge %r; layout unknown", self.spec.alias, thw, merge)
                return None
            try:
                return merged_patch_grid(
                    width, height, first_token=first, grid_h=grid_h, grid_w=grid_w, merge=merge
                )
            except ValueError as e:
                logger.info("%s: %s", self.spec.alias, e)
                return None
        holders = (processor, model, model.config)
        if _setting("ps_version", model.config) == "v1":  # InternVL's old pixel shuffle transposes tiles
            logger.info("%s: pixel shuffle v1 (column-major tiles) is not supported", self.spec.alias)
            return None
        image_size = _setting("image_size", *holders) or _setting("force_image_size", *holders)
        max_tiles = _setting("max_input_tiles", *holders)
        per_tile = _setting("num_image_token", *holders)
        thumbnail = _setting("use_thumbnail", *holders)
        dynamic = _setting("dynamic_image_size", *holders)
        if not (isinstance(image_size, int) and isinstance(max_tiles, int) and isinstance(per_tile, int)):
            logger.info(
                "%s: the processor does not say its tile size, tile count and tokens per tile",
                self.spec.alias,
            )
            return None
        try:
            return tiled_grids(
                width,
                height,
                first_token=first,
                image_size=image_size,
                max_tiles=max_tiles,
                use_thumbnail=bool(thumbnail),
                tokens_per_tile=per_tile,
                dynamic=dynamic is not False,
            )
        except ValueError as e:
            logger.info("%s: %s", self.spec.alias, e)
            return None


def _processor(model: Any) -> Any:
    """The model's processor: ``model.processor`` (Llama-Nemotron-VL) or ``model._get_processor()`` (Qwen)."""
    processor = getattr(model, "processor", None)
    if processor is not None:
        return processor
    getter = getattr(model, "_get_processor", None)
    if callable(getter):
        try:
            return getter()
        except Exception as e:  # a processor that cannot load means no layout, not a failed search
            logger.info("the model's processor did not load: %s", e)
    return None


def _setting(name: str, *holders: Any) -> Any:
    """The first non-None ``name`` attribute among ``holders``."""
    for holder in holders:
        value = getattr(holder, name, None) if holder is not None else None
        if value is not None:
            return value
    return None


def _image_token_id(model: Any, processor: Any) -> int | None:
    """The id of the image placeholder token (``<IMG_CONTEXT>``, ``<|image_pad|>``)."""
    value = _setting("img_context_token_id", model, model.config)
    if value is None:
        value = _setting("image_token_id", model.config, processor)
    if value is None:
        tokenizer = getattr(processor, "tokenizer", None)
        for token in ("<IMG_CONTEXT>", "<|image_pad|>"):
            converted = tokenizer.convert_tokens_to_ids(token) if tokenizer is not None else None
            if isinstance(converted, int) and converted != getattr(tokenizer, "unk_token_id", None):
                return converted
        return None
    return int(value)


def _first_row(value: Any) -> list[Any] | None:
    """The first row of a batch (tensor, array or nested list) as a list, or None."""
    if value is None:
        return None
    rows = value.tolist() if hasattr(value, "tolist") else list(value)
    if not rows:
        return None
    first = rows[0]
    return list(first) if isinstance(first, (list, tuple)) else list(rows)

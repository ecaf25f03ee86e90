"""The E5-V backend of :class:`~pagesight.models.dense_vl.VLEncoder`: prompted LLaVA-NeXT-8B, last tokens.

E5-V (``royokong/e5-v``; Jiang et al. 2024, "E5-V: Universal Embeddings with Multimodal Large
Language Models") embeds a text or an image as the last layer's hidden state of the last token
when the model is asked to summarize its input in one word, inside the Llama-3 chat template.
The reference code in the E5-V repository's README::

    llama3_template = '<|start_header_id|>user<|end_header_id|>\\n\\n{}<|eot_id|>' \\
                      '<|start_header_id|>assistant<|end_header_id|>\\n\\n \\n'
    img_prompt = llama3_template.format('<image>\\nSummary above image in one word: ')
    text_prompt = llama3_template.format('<sent>\\nSummary above sentence in one word: ')
    text_inputs = processor([text_prompt.replace('<sent>', t) for t in texts], return_tensors="pt",
                            padding=True)
    img_inputs = processor([img_prompt] * len(images), images, return_tensors="pt", padding=True)
    embs = model(**inputs, output_hidden_states=True, return_dict=True).hidden_states[-1][:, -1, :]

Queries and documents take the same text prompt (E5-V has no query instruction). The tokenizer pads
on the left so that position -1 is every row's real last token.

Image+text pages are not offered: E5-V's only fused prompt (``'<image>\\nModify this image with
"<sent>", describe modified image in one word: '``, its composed-image-retrieval evaluation) asks for
an edited image, not a page with its text, so a page with an image is embedded as the image.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._remote import _major_minor
from pagesight.models._torch import model_source, resolve_device, torch_dtype
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.dense_text.sentence_transformers import _hub_help
from pagesight.models.environment import check_environment
from pagesight.models.registry import ModelSpec

__all__ = ["E5VBackend", "LLAMA3_TEMPLATE", "TEXT_PROMPT", "IMAGE_PROMPT", "text_prompt"]

logger = logging.getLogger(__name__)

LLAMA3_TEMPLATE = (
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n \n"
)
"""The Llama-3 chat template E5-V's prompts are put in (from the E5-V README)."""

TEXT_PROMPT = LLAMA3_TEMPLATE.format("<sent>\nSummary above sentence in one word: ")
"""E5-V's text prompt; ``<sent>`` is replaced by the text."""

IMAGE_PROMPT = LLAMA3_TEMPLATE.format("<image>\nSummary above image in one word: ")
"""E5-V's image prompt; the processor expands ``<image>`` into the image's tokens."""

_PROMPT_TOKENS_MARGIN = 64  # room for the template and the special tokens when shortening a long text


def text_prompt(text: str) -> str:
    """E5-V's prompt for ``text``, as the reference builds it: ``TEXT_PROMPT.replace("<sent>", text)``."""
    return TEXT_PROMPT.replace("<sent>", text)


class E5VBackend(ModelBackend):
    """Embeds texts and images with E5-V (LLaVA-NeXT-8B, Llama 3); 4096-d, one space for both.

    Install:
        ``pip install "pagesight[e5v]"`` (transformers 4.44.2: E5-V does not run on newer ones,
        MTEB issue #1647; native transformers classes, no remote code).

    Instantiate:
        >>> from pagesight.models.registry import resolve_dense_vl
        >>> backend = E5VBackend(resolve_dense_vl("e5-v"), device="cuda")

    Use:
        >>> backend.encode_queries(["a red bus"]).shape             # doctest: +SKIP
        (1, 4096)
        >>> backend.encode_images([PIL.Image.open("page.png").convert("RGB")]).shape  # doctest: +SKIP
        (1, 4096)

    Args:
        spec: the model's spec (Hub id + pinned revision, or a local folder).
        options: :class:`~pagesight.models.base.LoadOptions` (E5-V needs no remote code;
            ``attn_implementation=None`` means ``sdpa``, the model's default if it refuses it).
    """

    name = "e5-v"

    def __init__(self, spec: ModelSpec, options: LoadOptions | None = None, /, **kw: Any) -> None:
        super().__init__(spec, options, **kw)
        self._processor: Any = None
        self._device = "cpu"
        self._load_lock = threading.Lock()

    # -- capabilities -----------------------------------------------------------------------------

    @property
    def supports_images(self) -> bool:
        return True

    @property
    def supports_image_text(self) -> bool:
        return False

    @property
    def native_dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        config = self.model.config
        text_config = getattr(config, "text_config", None) or config
        value = getattr(text_config, "hidden_size", None)
        if not isinstance(value, int):
            raise ModelNotAvailableError(f"{self.spec.alias}: the model config has no text hidden_size")
        return value

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        require("torch", "gpu")
        transformers = require("transformers", "gpu")
        source, revision = model_source(self.spec, self.revision)
        # before any download: E5-V does not run on the latest transformers (MTEB issue #1647)
        check_environment(self.spec, revision, resolve_device(self.device))
        check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        device = resolve_device(self.device)
        dtype_key = "dtype" if _major_minor(transformers.__version__) >= (5, 0) else "torch_dtype"
        kwargs: dict[str, Any] = {**SAFE_WEIGHTS, dtype_key: torch_dtype(self.dtype, device)}
        if revision is not None:
            kwargs["revision"] = revision
        attn = self.attn_implementation or "sdpa"
        logger.info("loading %s%s on %s (%s)", source, f"@{revision}" if revision else "", device, attn)
        cls = transformers.LlavaNextForConditionalGeneration
        try:
            processor = transformers.LlavaNextProcessor.from_pretrained(
                source, **({"revision": revision} if revision else {})
            )
            try:
                model = cls.from_pretrained(source, attn_implementation=attn, **kwargs)
            except (ValueError, ImportError) as e:
                if self.attn_implementation is not None or "attn" not in str(e).lower():
                    raise
                logger.info("%s refuses attn_implementation=%r (%s); using its default", source, attn, e)
                model = cls.from_pretrained(source, **kwargs)
        except Exception as e:
            if (pickled := pickle_weights_error(e, source)) is not None:
                raise pickled from e
            text = f"{type(e).__name__}: {str(e)[:400]}"
            if Path(source).is_dir():
                raise ModelNotAvailableError(
                    f"could not load an E5-V (LLaVA-NeXT) model and processor from {source}: {text}"
                ) from e
            rev = f" at revision {revision}" if revision else ""
            raise ModelNotAvailableError(
                f"could not load {source}{rev} from the Hugging Face Hub ({text}); "
                + _hub_help(source, revision)
            ) from e
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"  # the last position must be every row's real last token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._processor = processor
        self._device = device
        self._model = model.to(device).eval()

    @property
    def processor(self) -> Any:
        """The loaded ``LlavaNextProcessor`` (tokenizer padding on the left)."""
        self.load()
        return self._processor

    # -- encoding ---------------------------------------------------------------------------------

    def _max_text_tokens(self) -> int | None:
        config = self.model.config
        text_config = getattr(config, "text_config", None) or config
        limit = self.spec.max_tokens or getattr(text_config, "max_position_embeddings", None)
        return int(limit) - _PROMPT_TOKENS_MARGIN if isinstance(limit, int) else None

    def _fit(self, text: str) -> str:
        """``text`` without image tokens, shortened to the context the prompt leaves (the prompt stays)."""
        processor = self.processor
        image_token = getattr(processor, "image_token", "<image>")
        if image_token in text:
            text = text.replace(image_token, " ")  # a literal image token would ask for an image
        budget = self._max_text_tokens()
        if budget is None or len(text.encode("utf-8")) <= budget:  # a token holds at least one byte
            return text
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= budget:
            return text
        logger.info("shortening a text of %d tokens to %d for %s", len(ids), budget, self.spec.alias)
        return str(processor.tokenizer.decode(ids[:budget]))

    def _last_token_states(self, prompts: list[str], images: list[Any] | None) -> np.ndarray:
        import torch

        processor = self.processor
        model = self.model
        with self._lock, torch.inference_mode():
            if images is None:
                inputs = processor(text=prompts, return_tensors="pt", padding=True)
            else:
                inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
            mask = inputs.get("attention_mask")
            if mask is not None and not bool(mask[:, -1].all()):
                raise ModelNotAvailableError(
                    f"{self.spec.alias}: the tokenizer padded on the right; E5-V needs left padding"
                )
            inputs = inputs.to(self._device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            output = model(**inputs, output_hidden_states=True, return_dict=True)
            states = output.hidden_states[-1][:, -1, :]
            out: np.ndarray = states.float().cpu().numpy().astype(np.float32)
        return out

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.native_dimensions), dtype=np.float32)
        return self._last_token_states([text_prompt(self._fit(text)) for text in texts], None)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` raw last-token states under the text prompt."""
        return self._encode_texts(texts)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` raw last-token states under the text prompt (same as queries)."""
        return self._encode_texts(texts)

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """``(len(images), dim)`` raw last-token states under the image prompt (RGB PIL images in)."""
        if not images:
            return np.zeros((0, self.native_dimensions), dtype=np.float32)
        return self._last_token_states([IMAGE_PROMPT] * len(images), list(images))

    def encode_image_texts(self, pairs: list[tuple[Any, str]]) -> np.ndarray:
        raise ConfigurationError(
            f"{self.spec.alias} (E5-V) has no image+text prompt for pages; "
            "use page_input='image' or page_input='text'"
        )

"""The NVIDIA embed-vl backend: the models' own remote code, loaded with ``AutoModel``.

``nvidia/llama-nemotron-embed-vl-1b-v2`` and ``nvidia/llama-3.2-nemoretriever-1b-vlm-embed-v1`` ship
their own code (Eagle 2 VLM: a SigLIP vision tower + Llama 3.2 1B). Their model cards use it so::

    model = AutoModel.from_pretrained(id, trust_remote_code=True, dtype=torch.bfloat16).eval()
    model.processor.max_input_tiles = 6          # a page image becomes up to 6 tiles ...
    model.processor.use_thumbnail = True         # ... plus a thumbnail of the whole page
    model.processor.p_max_length = 2048          # image 2048, image+text 10240, text 8192 tokens
    model.encode_queries(["..."])                # (n, 2048); the code prefixes "query: "
    model.encode_documents(images=[pil, ...])    # (n, 2048); documents get "passage: "
    model.encode_documents(texts=["..."])
    model.encode_documents(images=[...], texts=[...])

:class:`NvidiaEmbedVLBackend` does exactly that, sets ``p_max_length`` before every call (under a
lock, as the processor is shared state) and returns float32 numpy arrays.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from pagesight.errors import ModelNotAvailableError
from pagesight.models._nvidia_compat import encode_error
from pagesight.models._remote import _major_minor, load_pretrained
from pagesight.models.base import ModelBackend
from pagesight.models.dense_vl._backend import check_matrix

__all__ = ["NvidiaEmbedVLBackend", "P_MAX_LENGTH", "MAX_INPUT_TILES", "USE_THUMBNAIL", "MIN_TRANSFORMERS"]

logger = logging.getLogger(__name__)

P_MAX_LENGTH: dict[str, int] = {"image": 2048, "image_text": 10240, "text": 8192, "query": 8192}
"""``processor.p_max_length`` per input form, as the embed-vl model card recommends."""

MAX_INPUT_TILES = 6
USE_THUMBNAIL = True

MIN_TRANSFORMERS: dict[str, str] = {"nvidia/llama-nemotron-embed-vl-1b-v2": "4.56"}
"""Hub id -> the oldest transformers its remote code runs with (model card)."""


class NvidiaEmbedVLBackend(ModelBackend):
    """Loads an NVIDIA embed-vl model (or a folder with the same remote-code methods) and calls it.

    Takes the spec and :class:`~pagesight.models.base.LoadOptions` (``trust_remote_code`` must be
    ``True``: the models are remote code; ``attn_implementation=None`` picks ``flash_attention_2``
    when flash-attn imports on CUDA, else ``sdpa``, falling back to the model's default).
    """

    name = "nvidia"

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        if self.spec.verified and self.spec.verified.startswith("UNVERIFIED"):
            message = f"{self.spec.alias}: {self.spec.verified}; it may not load or embed as documented"
            logger.warning(message)
            warnings.warn(message, UserWarning, stacklevel=3)
        loaded = load_pretrained(self, "AutoModel", check=self._before_loading, log=logger)
        model = loaded.model
        processor = getattr(model, "processor", None)
        if not callable(getattr(model, "encode_documents", None)) or processor is None:
            raise ModelNotAvailableError(
                f"{loaded.source} loaded, but it has no encode_documents() method or processor: it is not "
                "an NVIDIA embed-vl-style model; use backend='sentence-transformers' for a "
                "sentence-transformers model"
            )
        processor.max_input_tiles = MAX_INPUT_TILES
        processor.use_thumbnail = USE_THUMBNAIL
        self._model = model

    def _before_loading(self, source: str, revision: str | None, installed: str) -> None:
        """Refuse a transformers older than the remote code needs; warn when no revision is pinned."""
        self._check_transformers(installed)
        if self.spec.path is None and revision is None:
            logger.warning(
                "loading %s at the Hub's current main: no revision is pinned for it; pass revision=<commit> "
                "so the remote code and weights cannot change under you",
                source,
            )

    def _check_transformers(self, installed: str) -> None:
        wanted = MIN_TRANSFORMERS.get(self.spec.hf_id or "")
        if wanted is not None and _major_minor(installed) < _major_minor(wanted):
            raise ModelNotAvailableError(
                f"{self.spec.hf_id}'s remote code needs transformers>={wanted}; {installed} is installed: "
                f'pip install "transformers>={wanted}"'
            )

    # -- capabilities -----------------------------------------------------------------------------

    @property
    def native_dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        return int(self.encode_queries(["dimension probe"]).shape[1])

    @property
    def supports_images(self) -> bool:
        return True

    @property
    def supports_image_text(self) -> bool:
        return True

    # -- encoding ---------------------------------------------------------------------------------

    def _call(self, form: str, n: int, fn: Any) -> np.ndarray:
        import torch

        model = self.model
        try:
            with self._lock, torch.inference_mode():
                model.processor.p_max_length = P_MAX_LENGTH[form]
                output = fn(model)
        except TypeError as e:  # e.g. create_bidirectional_mask's arguments (NeMo-Retriever PR #2470)
            translated = encode_error(e, self.spec, self.model_revision())
            if translated is None:
                raise
            raise translated from e
        return check_matrix(output, n, form.replace("_", "+"), self.spec.dimensions)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._call("query", len(texts), lambda m: m.encode_queries(list(texts)))

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._call("text", len(texts), lambda m: m.encode_documents(texts=list(texts)))

    def encode_images(self, images: list[Any]) -> np.ndarray:
        return self._call("image", len(images), lambda m: m.encode_documents(images=list(images)))

    def encode_image_texts(self, pairs: list[tuple[Any, str]]) -> np.ndarray:
        images = [image for image, _ in pairs]
        texts = [text for _, text in pairs]
        return self._call("image_text", len(pairs), lambda m: m.encode_documents(images=images, texts=texts))

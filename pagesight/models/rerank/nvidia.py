"""The NVIDIA rerank-vl backend: ``nvidia/llama-nemotron-rerank-vl-1b-v2`` through its own remote code.

The model is loaded with ``AutoModelForSequenceClassification`` and its processor with
``AutoProcessor(..., max_input_tiles=6, use_thumbnail=True, rerank_max_length=2048)``, both with
``trust_remote_code=True`` at the pinned revision. A batch is
``processor.process_queries_documents_crossencoder([{"question", "doc_text", "doc_image"}, ...])``
(``doc_image`` a PIL image, or ``""`` for a text-only document) -> ``input_ids``, ``attention_mask``
and ``pixel_values`` (``None`` without images) -> ``model(**batch, return_dict=True).logits``,
shape ``(n, 1)``.

Token budget: the remote processor (``LlamaNemotronVLRerankProcessor``) keeps it in the attribute
``rerank_max_length``, which ``process_query_documents`` reads when no ``max_length`` is passed. One
processor serves both budgets: before each batch, under the backend's lock, the attribute is set to
2048 when the batch has an image and 8192 when it has none (or to the caller's ``max_length``).
Setting the attribute works with every revision of the processor; passing ``max_length=`` through
``process_queries_documents_crossencoder(**kwargs)`` needs one that forwards its keyword arguments.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from pagesight.errors import ModelNotAvailableError
from pagesight.models._remote import load_pretrained
from pagesight.models.base import LoadOptions
from pagesight.models.registry import ModelSpec
from pagesight.models.rerank._backend import PairBackend

__all__ = ["IMAGE_MAX_LENGTH", "NvidiaRerankBackend", "PROCESSOR_KWARGS", "TEXT_MAX_LENGTH"]

logger = logging.getLogger(__name__)

IMAGE_MAX_LENGTH = 2048
"""Tokens per pair for batches with a page image (NVIDIA's model card: ``rerank_max_length=2048``)."""

TEXT_MAX_LENGTH = 8192
"""Tokens per pair for text-only batches."""

PROCESSOR_KWARGS: dict[str, Any] = {
    "max_input_tiles": 6,
    "use_thumbnail": True,
    "rerank_max_length": IMAGE_MAX_LENGTH,
}
"""What ``AutoProcessor.from_pretrained`` gets, as in the model card."""


def _load_processor(transformers: ModuleType, source: str, kwargs: dict[str, Any]) -> Any:
    """The reranker's processor, refused unless it has ``process_queries_documents_crossencoder``.

    Args:
        transformers: the imported ``transformers`` module.
        source: the Hub id or local folder the model was loaded from.
        kwargs: ``trust_remote_code`` and ``revision``, as the model got them.
    """
    processor = transformers.AutoProcessor.from_pretrained(source, **kwargs, **PROCESSOR_KWARGS)
    if not callable(getattr(processor, "process_queries_documents_crossencoder", None)):
        raise ModelNotAvailableError(
            f"{source} loaded, but its processor ({type(processor).__name__}) has no "
            "process_queries_documents_crossencoder(): it is not an NVIDIA rerank-vl model; "
            "use backend='cross-encoder' for a sentence-transformers CrossEncoder"
        )
    return processor


class NvidiaRerankBackend(PairBackend):
    """Loads the NVIDIA reranker (or a folder with the same remote code) and scores pairs.

    Args:
        spec: the model's spec (Hub id + pinned revision, or a local folder).
        options: :class:`~pagesight.models.base.LoadOptions` (``trust_remote_code`` must be ``True``:
            the model is remote code).
        max_length: tokens per pair; ``None`` for 2048 with images, 8192 for text-only batches.
    """

    name = "nvidia"

    def __init__(self, spec: ModelSpec, options: LoadOptions | None = None, /, **kw: Any) -> None:
        super().__init__(spec, options, **kw)
        self._processor: Any = None
        self._device = "cpu"

    @property
    def supports_images(self) -> bool:
        return True

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        if self._model is not None:
            return
        loaded = load_pretrained(
            self, "AutoModelForSequenceClassification", extra=_load_processor, log=logger
        )
        self._model = loaded.model
        self._processor = loaded.extra
        self._device = loaded.device

    @property
    def processor(self) -> Any:
        self.load()
        return self._processor

    # -- scoring ----------------------------------------------------------------------------------

    def budget(self, has_image: bool) -> int:
        """Tokens per pair for a batch with (``True``) or without an image."""
        if self.max_length is not None:
            return self.max_length
        return IMAGE_MAX_LENGTH if has_image else TEXT_MAX_LENGTH

    def logits(self, query: str, docs: list[tuple[str, Any]]) -> np.ndarray:
        import torch

        model, processor = self.model, self.processor
        examples = [
            {"question": query, "doc_text": text, "doc_image": image if image is not None else ""}
            for text, image in docs
        ]
        has_image = any(image is not None for _, image in docs)
        with self._lock, torch.inference_mode():
            processor.rerank_max_length = self.budget(has_image)
            batch = processor.process_queries_documents_crossencoder(examples)
            inputs = {k: v.to(self._device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            output = model(**inputs, return_dict=True)
        logits = getattr(output, "logits", None)
        if logits is None or tuple(logits.shape) not in ((len(docs), 1), (len(docs),)):
            shape = None if logits is None else tuple(logits.shape)
            raise ModelNotAvailableError(
                f"{self.spec.alias} returned logits of shape {shape} for {len(docs)} pairs; "
                "expected (n, 1) relevance logits"
            )
        out: np.ndarray = logits.detach().float().reshape(-1).cpu().numpy().astype(np.float32)
        return out

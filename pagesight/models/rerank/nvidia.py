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
processor serves every budget: a batch is split by input kind and, before each part, under the
backend's lock, the attribute is set to that kind's budget (:data:`MAX_LENGTHS`: 2048 for an image
alone, 8192 for text, 10240 for image+text) or to the caller's ``max_length``. An image takes up
to (6 tiles + thumbnail) x 256 = 1792 tokens, so 2048 for an image+text page would leave about 250
tokens for the question and the page text; NVIDIA's NeMo-Retriever reranks with 10240. Setting
the attribute works with every revision of the processor; passing ``max_length=`` through
``process_queries_documents_crossencoder(**kwargs)`` needs one that forwards its keyword arguments.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from pagesight.errors import ModelNotAvailableError
from pagesight.models._nvidia_compat import encode_error
from pagesight.models._remote import load_pretrained
from pagesight.models.base import LoadOptions
from pagesight.models.registry import ModelSpec
from pagesight.models.rerank._backend import PairBackend

__all__ = [
    "IMAGE_MAX_LENGTH",
    "IMAGE_TEXT_MAX_LENGTH",
    "MAX_LENGTHS",
    "NvidiaRerankBackend",
    "PROCESSOR_KWARGS",
    "TEXT_MAX_LENGTH",
]

logger = logging.getLogger(__name__)

IMAGE_MAX_LENGTH = 2048
"""Tokens per pair for batches with a page image (NVIDIA's model card: ``rerank_max_length=2048``)."""

TEXT_MAX_LENGTH = 8192
"""Tokens per pair for text-only batches."""

IMAGE_TEXT_MAX_LENGTH = 10240
"""Tokens per pair for a page image with its text (NeMo-Retriever's ``nemotron_rerank_vl_v2``
wrappers: ``_DEFAULT_MAX_LENGTH = 10240``; the image alone can take 1792 tokens)."""

MAX_LENGTHS: dict[str, int] = {
    "image": IMAGE_MAX_LENGTH,
    "text": TEXT_MAX_LENGTH,
    "image_text": IMAGE_TEXT_MAX_LENGTH,
}
"""Input kind -> tokens per pair."""

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

    def budget(self, has_image: bool | str) -> int:
        """Tokens per pair for an input kind (``"image"``, ``"text"``, ``"image_text"``).

        ``True`` / ``False`` (of before) mean ``"image"`` / ``"text"``.
        """
        if self.max_length is not None:
            return self.max_length
        kind = has_image if isinstance(has_image, str) else ("image" if has_image else "text")
        return MAX_LENGTHS[kind]

    def logits(self, query: str, docs: list[tuple[str, Any]]) -> np.ndarray:
        groups: dict[str, list[int]] = {}
        for i, (text, image) in enumerate(docs):
            kind = "text" if image is None else ("image_text" if text.strip() else "image")
            groups.setdefault(kind, []).append(i)
        out = np.zeros(len(docs), dtype=np.float32)
        for kind, rows in groups.items():
            out[rows] = self._logits(query, [docs[i] for i in rows], self.budget(kind))
        return out

    def _logits(self, query: str, docs: list[tuple[str, Any]], budget: int) -> np.ndarray:
        import torch

        model, processor = self.model, self.processor
        examples = [
            {"question": query, "doc_text": text, "doc_image": image if image is not None else ""}
            for text, image in docs
        ]
        try:
            with self._lock, torch.inference_mode():
                processor.rerank_max_length = budget
                batch = processor.process_queries_documents_crossencoder(examples)
                inputs = {k: v.to(self._device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                output = model(**inputs, return_dict=True)
        except TypeError as e:  # a revision written for another transformers (NeMo-Retriever PR #2500)
            translated = encode_error(e, self.spec, self.model_revision())
            if translated is None:
                raise
            raise translated from e
        logits = getattr(output, "logits", None)
        if logits is None or tuple(logits.shape) not in ((len(docs), 1), (len(docs),)):
            shape = None if logits is None else tuple(logits.shape)
            raise ModelNotAvailableError(
                f"{self.spec.alias} returned logits of shape {shape} for {len(docs)} pairs; "
                "expected (n, 1) relevance logits"
            )
        out: np.ndarray = logits.detach().float().reshape(-1).cpu().numpy().astype(np.float32)
        if not np.isfinite(out).all():
            bad = [i for i, v in enumerate(out.tolist()) if not np.isfinite(v)]
            raise ModelNotAvailableError(
                f"{self.spec.alias} returned non-finite relevance logits for {len(bad)} of {len(docs)} "
                f"pairs (positions {bad[:5]}) at {budget} tokens per pair; the scores cannot be ranked. "
                "Try dtype='float32' or attn_implementation='eager'"
            )
        return out

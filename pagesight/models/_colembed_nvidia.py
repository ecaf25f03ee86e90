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
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._deps import require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._colembed_common import model_source, normalize_rows, resolve_device, torch_dtype
from pagesight.models.registry import ModelSpec

__all__ = ["NvidiaColEmbedBackend", "token_matrices", "TRANSFORMERS_PINS"]

logger = logging.getLogger(__name__)

TRANSFORMERS_PINS: dict[str, str] = {
    # The versions the model cards (and MTEB's wrappers) require for the remote code.
    "nvidia/llama-nemoretriever-colembed-3b-v1": "4.49.0",
    "nvidia/llama-nemoretriever-colembed-1b-v1": "4.49.0",
    "nvidia/llama-nemotron-colembed-vl-3b-v2": "4.49.0",
    "nvidia/nemotron-colembed-vl-4b-v2": "5.0.0rc0",
    "nvidia/nemotron-colembed-vl-8b-v2": "5.0.0rc0",
}
"""Hub id -> the transformers version its remote code was written for."""

_REMOTE_MODULES = "transformers_modules"  # where transformers puts remote code it imports


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


def _raised_in_remote_code(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            if _REMOTE_MODULES in frame.filename:
                return True
        current = current.__cause__ or current.__context__
    return False


def _major_minor(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class NvidiaColEmbedBackend:
    """Loads an NVIDIA ColEmbed model (or a folder with the same remote-code methods) and calls it.

    Args:
        spec: the model's spec (Hub id + pinned revision, or a local folder).
        device: torch device (``None``: CUDA when available).
        dtype: weight dtype name (``None``: bfloat16 on CUDA, float32 on CPU).
        trust_remote_code: must be ``True``; the models are remote code.
        revision: overrides the spec's pinned revision.
        attn_implementation: ``None`` picks ``flash_attention_2`` when flash-attn imports (CUDA),
            else ``sdpa``, and falls back to the model's default if the model refuses it.
    """

    name = "nvidia"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.revision = revision or spec.revision
        self.attn_implementation = attn_implementation
        self._model: Any = None
        self._lock = threading.Lock()

    # -- loading ----------------------------------------------------------------------------------

    def source(self) -> tuple[str, str | None]:
        return model_source(self.spec, self.revision)

    def load(self) -> None:
        if self._model is not None:
            return
        if not self.trust_remote_code:
            pinned = f" (pinned to revision {self.revision})" if self.revision else ""
            raise ConfigurationError(
                f"{self.spec.alias} runs code from its model repository{pinned}; "
                "pass trust_remote_code=True to allow it"
            )
        require("torch", "gpu")
        transformers = require("transformers", "gpu")
        source, revision = self.source()
        device = resolve_device(self.device)
        kwargs: dict[str, Any] = {"trust_remote_code": True}
        if revision is not None:
            kwargs["revision"] = revision
        dtype = torch_dtype(self.dtype, device)
        dtype_key = "dtype" if _major_minor(transformers.__version__) >= (5, 0) else "torch_dtype"
        kwargs[dtype_key] = dtype
        attn = self.attn_implementation or self._preferred_attention(device)
        logger.info(
            "loading %s%s on %s (%s, %s)", source, f"@{revision}" if revision else "", device, dtype, attn
        )
        try:
            try:
                model = transformers.AutoModel.from_pretrained(source, attn_implementation=attn, **kwargs)
            except (ValueError, ImportError) as e:
                if self.attn_implementation is not None or "attn" not in str(e).lower():
                    raise
                logger.info("%s refuses attn_implementation=%r (%s); using its default", source, attn, e)
                model = transformers.AutoModel.from_pretrained(source, **kwargs)
        except ModelNotAvailableError:
            raise
        except Exception as e:
            raise self._load_error(e, source, revision, transformers.__version__) from e
        model = model.to(device).eval()
        if not callable(getattr(model, "forward_queries", None)):
            raise ModelNotAvailableError(
                f"{source} loaded, but it has no forward_queries() method: it is not an NVIDIA "
                "ColEmbed-style model; use backend='sentence-transformers' or 'token-embeddings'"
            )
        self._model = model

    @staticmethod
    def _preferred_attention(device: str) -> str:
        if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return "sdpa"

    def _load_error(self, e: Exception, source: str, revision: str | None, installed: str) -> Exception:
        text = f"{type(e).__name__}: {str(e)[:400]}"
        if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith("transformers"):
            return ModelNotAvailableError(
                f"{source}'s remote code needs the package {e.name!r}: "
                f"pip install {e.name.split('.')[0]} ({text})"
            )
        if "requires the following packages" in str(e):
            return ModelNotAvailableError(f"{source}'s remote code needs more packages: {text}")
        wanted = TRANSFORMERS_PINS.get(self.spec.hf_id or "") or self._saved_with(source)
        remote = _raised_in_remote_code(e) or isinstance(e, (ImportError, AttributeError))
        if wanted and remote and _major_minor(wanted) != _major_minor(installed):
            return ModelNotAvailableError(
                f"{source}'s remote code does not run with the installed transformers {installed} ({text}). "
                f"It was written for transformers {wanted}; install that version in this environment: "
                f'pip install "transformers=={wanted}"'
            )
        if Path(source).is_dir():
            return ModelNotAvailableError(f"could not load the model in {source}: {text}")
        rev = f" at revision {revision}" if revision else ""
        return ModelNotAvailableError(
            f"could not load {source}{rev} from the Hugging Face Hub ({text}). Check the network or "
            "HF_HUB_OFFLINE, accept the model's license on its Hub page and log in (hf auth login), "
            "or pass the path of a downloaded copy as `model`"
        )

    @staticmethod
    def _saved_with(source: str) -> str | None:
        config = Path(source) / "config.json"
        if not config.is_file():
            return None
        import json

        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("transformers_version")
        except (OSError, ValueError):
            return None
        return value if isinstance(value, str) else None

    @property
    def model(self) -> Any:
        self.load()
        return self._model

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

        with self._lock, torch.inference_mode():
            output = method(inputs, batch_size=len(inputs))
        return token_matrices(output, len(inputs), what=what)

    def encode_queries(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        return self._call(self.model.forward_queries, texts, "query")

    def encode_documents(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        # NVIDIA's own deployment of the v1 models embeds text passages with forward_queries
        # (the remote code has no text-passage method); the v2 code takes them as documents
        # without an image.
        return self._call(self.model.forward_queries, texts, "document")

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

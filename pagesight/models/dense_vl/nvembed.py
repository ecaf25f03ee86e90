"""The NV-Embed-v2 backend of :class:`~pagesight.models.dense_vl.VLEncoder`: text only, sentence-transformers.

Loaded as NVIDIA's model card does (``nvidia/NV-Embed-v2``, "Usage (Sentence-Transformers)")::

    model = SentenceTransformer("nvidia/NV-Embed-v2", trust_remote_code=True)
    model.max_seq_length = 32768
    model.tokenizer.padding_side = "right"
    query_prefix = "Instruct: " + task + "\\nQuery: "
    model.encode([q + model.tokenizer.eos_token for q in queries], prompt=query_prefix,
                 normalize_embeddings=True)
    model.encode([p + model.tokenizer.eos_token for p in passages], normalize_embeddings=True)

The instruction goes through ``prompt=`` rather than being glued to the text: sentence-transformers
then measures its length in tokens and passes it to the model's ``Pooling(include_prompt=False)``,
which leaves the instruction tokens out of the mean, as NV-Embed's own ``encode`` masks them
(``is_mask_instruction``). Gluing it on would pool the instruction into every query vector.

NV-Embed-v2's remote code returns ``{"sentence_embeddings": per-token vectors}`` where
sentence-transformers >= 5 looks for ``last_hidden_state``; the backend points the ``Transformer``
module at that key when the model's ``forward`` takes NV-Embed's ``pool_mask`` argument.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, refuse_pickle_modules, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._remote import _major_minor, _raised_in_remote_code
from pagesight.models._torch import model_source, resolve_device, torch_dtype
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.dense_text.sentence_transformers import _hub_help
from pagesight.models.environment import check_environment
from pagesight.models.registry import ModelSpec

__all__ = ["NVEmbedBackend", "DEFAULT_TASK", "query_prefix"]

logger = logging.getLogger(__name__)

DEFAULT_TASK = "Given a question, retrieve passages that answer the question"
"""The retrieval instruction of NV-Embed-v2's model card."""

MAX_SEQ_LENGTH = 32768
"""The context the model card sets (``model.max_seq_length = 32768``)."""

NVEMBED_TRANSFORMERS = "4.42.4"
"""The transformers version NV-Embed-v2's model card installs; its remote code stops importing with 4.48."""


def query_prefix(task: str) -> str:
    """The instruction NV-Embed-v2 puts before a query: ``"Instruct: {task}\\nQuery: "``."""
    return f"Instruct: {task}\nQuery: "


def _has_auto_map(folder: str) -> bool:
    config = Path(folder) / "config.json"
    try:
        return "auto_map" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False


class NVEmbedBackend(ModelBackend):
    """Embeds texts with NV-Embed-v2 (or a folder laid out like it); 4096-d, text only.

    Install:
        ``pip install "pagesight[nvembed]"`` (the card's transformers 4.42.4 with
        sentence-transformers 2.7.0); NV-Embed-v2's remote code needs transformers 4.42-4.47.

    Instantiate:
        >>> from pagesight.models.registry import resolve_dense_vl
        >>> backend = NVEmbedBackend(resolve_dense_vl("nv-embed-v2"), trust_remote_code=True)

    Use:
        >>> backend.encode_queries(["how do cats sleep?"]).shape     # doctest: +SKIP
        (1, 4096)
        >>> backend.encode_documents(["Cats sleep 15 hours a day."]).shape  # doctest: +SKIP
        (1, 4096)

    Args:
        spec: the model's spec (Hub id + pinned revision, or a local folder).
        options: :class:`~pagesight.models.base.LoadOptions` (``trust_remote_code`` must be
            ``True`` for NV-Embed-v2: its model is remote code).
        task: the query instruction (``None``: :data:`DEFAULT_TASK`); documents get no instruction.
    """

    name = "nv-embed"

    def __init__(
        self, spec: ModelSpec, options: LoadOptions | None = None, /, *, task: str | None = None, **kw: Any
    ) -> None:
        if task is not None and not task.strip():
            raise ConfigurationError(f"`task` must be a non-empty instruction for {spec.alias}, got {task!r}")
        super().__init__(spec, options, **kw)
        self.task = task or DEFAULT_TASK
        self._load_lock = (
            threading.Lock()
        )  # the base's _lock serializes use: fast tokenizers are not thread-safe

    @property
    def query_prefix(self) -> str:
        """The text put before every query (``"Instruct: {task}\\nQuery: "``)."""
        return query_prefix(self.task)

    # -- capabilities -----------------------------------------------------------------------------

    @property
    def supports_images(self) -> bool:
        return False

    @property
    def supports_image_text(self) -> bool:
        return False

    @property
    def native_dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dims = get()
        if not dims:
            raise ModelNotAvailableError(f"{self.spec.alias}: the model does not report its embedding size")
        return int(dims)

    # -- loading ----------------------------------------------------------------------------------

    def _needs_remote_code(self, source: str) -> bool:
        if self.spec.requires_remote_code or self.spec.path is None:
            return True
        return _has_auto_map(source)

    def load(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                self._model = self._load()

    def _load(self) -> Any:
        source, revision = model_source(self.spec, self.revision)
        if not self.trust_remote_code and self._needs_remote_code(source):
            pinned = f" (pinned to revision {self.revision})" if self.revision else ""
            raise ConfigurationError(
                f"{self.spec.alias} runs code from its model repository{pinned}; "
                "pass trust_remote_code=True to allow it"
            )
        require("torch", "gpu")
        transformers = require("transformers", "gpu")
        st = require("sentence_transformers", "st")
        check_environment(self.spec, revision, resolve_device(self.device))  # MTEB issue #3287
        check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        device = resolve_device(self.device)
        dtype_key = "dtype" if _major_minor(transformers.__version__) >= (5, 0) else "torch_dtype"
        model_kwargs: dict[str, Any] = {**SAFE_WEIGHTS, dtype_key: torch_dtype(self.dtype, device)}
        attn = self.attn_implementation or self._preferred_attention(device)
        kwargs: dict[str, Any] = {"device": device, "trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        logger.info("loading %s%s on %s (%s)", source, f"@{revision}" if revision else "", device, attn)
        refuse_pickle_modules(source)
        try:
            try:
                model = st.SentenceTransformer(
                    source, model_kwargs={**model_kwargs, "attn_implementation": attn}, **kwargs
                )
            except (ValueError, ImportError) as e:
                if self.attn_implementation is not None or "attn" not in str(e).lower():
                    raise
                logger.info("%s refuses attn_implementation=%r (%s); using its default", source, attn, e)
                model = st.SentenceTransformer(source, model_kwargs=model_kwargs, **kwargs)
        except Exception as e:
            raise self._load_error(e, source, revision, transformers.__version__) from e
        self._prepare(model, source)
        return model

    @staticmethod
    def _preferred_attention(device: str) -> str:
        if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
            return "flash_attention_2"
        return "sdpa"

    def _prepare(self, model: Any, source: str) -> None:
        """Apply the model card's settings and fit NV-Embed's output to sentence-transformers."""
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None or not getattr(tokenizer, "eos_token", None):
            raise ModelNotAvailableError(
                f"{source} loaded, but its tokenizer has no EOS token; NV-Embed-v2 appends one to every "
                "input. Use a copy of nvidia/NV-Embed-v2 with its tokenizer files"
            )
        model.max_seq_length = self.spec.max_tokens or MAX_SEQ_LENGTH
        tokenizer.padding_side = "right"
        first = model[0] if len(model) else None
        inner = getattr(first, "model", None) or getattr(first, "auto_model", None)
        config = getattr(first, "modality_config", None)
        forward = getattr(inner, "forward", None)
        takes_pool_mask = forward is not None and "pool_mask" in inspect.signature(forward).parameters
        if first is not None and isinstance(config, dict) and "text" in config and takes_pool_mask:
            # NVEmbedModel returns {"sentence_embeddings": ...}, not a ModelOutput. A new dict: the
            # module's may be a default shared by every model of the architecture.
            text = {**config["text"], "method_output_name": "sentence_embeddings"}
            first.modality_config = {**config, "text": text}

    def _load_error(self, e: Exception, source: str, revision: str | None, installed: str) -> Exception:
        text = f"{type(e).__name__}: {str(e)[:400]}"
        if (pickled := pickle_weights_error(e, source)) is not None:
            return pickled
        if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith("transformers"):
            return ModelNotAvailableError(
                f"{source}'s remote code needs the package {e.name!r}: "
                f"pip install {e.name.split('.')[0]} ({text})"
            )
        if _raised_in_remote_code(e) or isinstance(e, (ImportError, AttributeError)):
            return ModelNotAvailableError(
                f"{source}'s remote code does not run with the installed transformers {installed} ({text}). "
                f"NV-Embed-v2's code was written for transformers {NVEMBED_TRANSFORMERS} (its model card "
                "installs transformers==4.42.4 with sentence-transformers==2.7.0) and is known to need a "
                "transformers release from 4.42 to 4.47; install the card's pair in a separate environment: "
                'pip install "transformers==4.42.4" "sentence-transformers==2.7.0"'
            )
        if Path(source).is_dir():
            return ModelNotAvailableError(f"could not load the model in {source}: {text}")
        rev = f" at revision {revision}" if revision else ""
        return ModelNotAvailableError(
            f"could not load {source}{rev} from the Hugging Face Hub ({text}); " + _hub_help(source, revision)
        )

    # -- encoding ---------------------------------------------------------------------------------

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        model = self.model
        if not texts:
            return np.zeros((0, self.native_dimensions), dtype=np.float32)
        eos = model.tokenizer.eos_token
        with self._lock:
            vectors = model.encode(
                [text + eos for text in texts],
                prompt=prompt,  # "" for passages: no prompt, whatever default the folder names
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        out: np.ndarray = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        return out

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` unit vectors, each query after the instruction prefix, EOS appended."""
        return self._encode(texts, self.query_prefix)

    def encode_documents(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` unit vectors, passages with no prefix, EOS appended."""
        return self._encode(texts, "")

    def encode_images(self, images: list[Any]) -> np.ndarray:
        raise ConfigurationError(
            f"{self.spec.alias} (NV-Embed-v2) embeds text only; it cannot embed images. "
            "Use page_input='text' or a vision-language model such as llama-nemotron-embed-vl-1b-v2"
        )

    def encode_image_texts(self, pairs: list[tuple[Any, str]]) -> np.ndarray:
        raise ConfigurationError(
            f"{self.spec.alias} (NV-Embed-v2) embeds text only; it cannot embed image+text pages. "
            "Use page_input='text' or a vision-language model such as llama-nemotron-embed-vl-1b-v2"
        )

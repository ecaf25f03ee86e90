"""sentence-transformers backends of :class:`~pagesight.models.late_interaction.ColEmbedEncoder`.

- :class:`MultiVectorBackend`: a ColBERT / ColPali-style ``MultiVectorEncoder`` (its own query and
  document prefixes, lengths and masks; images when the model takes them).
- :class:`TokenEmbeddingsBackend`: the per-token vectors of ANY plain sentence-transformers model
  (the offline ``minilm-tokens``): special tokens and padding dropped, each token L2-normalized,
  texts longer than the model's window split into overlapping token windows, every token kept once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, refuse_pickle_modules, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._torch import resolve_device, torch_dtype
from pagesight.models._windows import pack_windows, spans_from_tokens, spans_from_words
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.late_interaction._backend import normalize_rows
from pagesight.models.registry import ModelSpec

__all__ = ["MultiVectorBackend", "TokenEmbeddingsBackend", "token_windows"]

logger = logging.getLogger(__name__)


def token_windows(count: int, budget: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Cut ``count`` tokens into windows of at most ``budget`` sharing ``overlap`` tokens.

    Returns ``(start, end, keep_start, keep_end)`` per window: the window covers tokens
    ``[start, end)`` and contributes ``[keep_start, keep_end)``; the kept ranges tile
    ``[0, count)`` exactly, each shared stretch split at its middle so every kept token has
    context on both sides where the text allows.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    overlap = max(0, min(overlap, budget // 2))
    stride = budget - overlap
    starts = [0]
    while starts[-1] + budget < count:
        starts.append(starts[-1] + stride)
    cuts = [0] + [(starts[k + 1] + starts[k] + budget) // 2 for k in range(len(starts) - 1)] + [count]
    return [(s, min(s + budget, count), cuts[k], cuts[k + 1]) for k, s in enumerate(starts)]


def _special_wrap(tok: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text (``[CLS]`` / ``[SEP]`` for BERT)."""
    probe = "pagesight"
    plain = tok(probe, add_special_tokens=False)["input_ids"]
    full = tok(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain) :])
    return [], []


class TokenEmbeddingsBackend(ModelBackend):
    """Per-token vectors of a plain sentence-transformers model (no query/document prefixes).

    Args:
        spec: the model (``minilm-tokens`` points at the bundled all-MiniLM-L6-v2).
        options: device, remote code and revision (:class:`~pagesight.models.base.LoadOptions`).
        window_overlap: tokens shared by consecutive windows of a long text.
    """

    name = "token-embeddings"
    supports_images = False
    supports_image_text = False

    def __init__(
        self, spec: ModelSpec, options: LoadOptions | None = None, /, *, window_overlap: int = 32, **kw: Any
    ) -> None:
        from pagesight.models.dense_text.sentence_transformers import SentenceTransformerBackend

        super().__init__(spec, options, **kw)
        self.window_overlap = window_overlap
        self._st = SentenceTransformerBackend(spec, self.options)

    def load(self) -> None:
        self._st.load()

    @property
    def dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        transformer = self._st.model[0]
        return int(transformer.get_embedding_dimension())

    def _budget(self) -> int:
        tok = self._st.model.tokenizer
        specials = int(tok.num_special_tokens_to_add(pair=False))
        budget = self._st.max_length - specials
        if budget < 2:
            raise ConfigurationError(f"{self.spec.alias}'s window holds no text tokens")
        return budget

    def encode_queries(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        return self.encode_texts(texts, batch_size)

    def encode_documents(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        return self.encode_texts(texts, batch_size)

    def encode_images(self, images: list[Any], batch_size: int) -> list[np.ndarray]:
        raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")

    def encode_image_texts(self, pairs: list[tuple[Any, str]], batch_size: int) -> list[np.ndarray]:
        raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")

    def token_spans(self, texts: list[str]) -> list[np.ndarray] | None:
        """The characters behind each row of :meth:`encode_texts`: one ``(n_rows, 2)`` array per text.

        Row ``i`` holds ``[start, end)`` of the text's ``i``-th token (the same tokenization and the
        same rows as :meth:`encode_texts`, whose windows keep every token exactly once, in order);
        an empty text's rows are its special tokens, ``(-1, -1)``. ``None`` when the tokenizer
        gives no character offsets (a slow tokenizer).
        """
        self.load()
        loaded = self._st._loaded
        assert loaded is not None
        tok = loaded.model.tokenizer
        if not getattr(tok, "is_fast", False):
            logger.info("%s has a slow tokenizer: no character offsets for its tokens", self.spec.alias)
            return None
        out = []
        with loaded.lock:
            prefix, suffix = _special_wrap(tok)
            for text in texts:
                enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
                spans = [tuple(span) for span in enc["offset_mapping"]]
                if not spans:  # an empty text: its special tokens are all there is
                    spans = [(-1, -1)] * (len(prefix) + len(suffix))
                out.append(np.asarray(spans, dtype=np.int64).reshape(-1, 2))
        return out

    def encode_texts(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        """One matrix per text: every token of the text once (special tokens and padding dropped)."""
        import torch

        model = self._st.model
        loaded = self._st._loaded
        assert loaded is not None
        tok = model.tokenizer
        budget = self._budget()
        pieces: list[tuple[int, list[int], int, int]] = []  # owner, window ids, keep from, keep to
        with loaded.lock:
            for owner, text in enumerate(texts):
                ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
                for start, end, keep_start, keep_end in token_windows(len(ids), budget, self.window_overlap):
                    pieces.append((owner, ids[start:end], keep_start - start, keep_end - start))
            rows: list[list[np.ndarray]] = [[] for _ in texts]
            transformer = model[0]
            device = next(model.parameters()).device
            prefix, suffix = _special_wrap(tok)
            for first in range(0, len(pieces), batch_size):
                chunk = pieces[first : first + batch_size]
                built = [prefix + ids + suffix for _, ids, _, _ in chunk]
                width = max(len(b) for b in built)
                pad = tok.pad_token_id if tok.pad_token_id is not None else 0
                input_ids = torch.full((len(built), width), pad, dtype=torch.long)
                mask = torch.zeros((len(built), width), dtype=torch.long)
                for i, b in enumerate(built):
                    input_ids[i, : len(b)] = torch.tensor(b)
                    mask[i, : len(b)] = 1
                features: dict[str, Any] = {
                    "input_ids": input_ids.to(device),
                    "attention_mask": mask.to(device),
                }
                if "token_type_ids" in tok.model_input_names:
                    features["token_type_ids"] = torch.zeros_like(input_ids).to(device)
                with torch.inference_mode():
                    hidden = transformer(features)["token_embeddings"].float().cpu().numpy()
                for i, (owner, ids, keep_from, keep_to) in enumerate(chunk):
                    if ids:
                        keep = slice(len(prefix) + keep_from, len(prefix) + keep_to)
                        rows[owner].append(hidden[i, keep])
                    else:  # an empty text: its special tokens are all there is to match
                        rows[owner].append(hidden[i, : len(built[i])])
        return [normalize_rows(np.concatenate(r, axis=0), what=f"text {i}") for i, r in enumerate(rows)]


class MultiVectorBackend(ModelBackend):
    """A sentence-transformers ``MultiVectorEncoder`` (ColBERT, ColPali, ... models).

    Queries go through ``encode_query`` and documents through ``encode_document``, so each gets the
    model's own prefix, length and mask. A text longer than the document length is split into
    overlapping windows and the windows' token matrices are concatenated (tokens in the shared
    stretches appear twice, which MaxSim does not mind).
    """

    name = "sentence-transformers"
    supports_image_text = False

    def __init__(
        self, spec: ModelSpec, options: LoadOptions | None = None, /, *, window_overlap: int = 32, **kw: Any
    ) -> None:
        super().__init__(spec, options, **kw)
        self.window_overlap = window_overlap

    def load(self) -> None:
        if self._model is not None:
            return
        st = require("sentence_transformers", "st")
        if not hasattr(st, "MultiVectorEncoder"):
            raise ModelNotAvailableError(
                "this sentence-transformers has no MultiVectorEncoder; "
                'pip install "sentence-transformers>=6" (or use backend="token-embeddings")'
            )
        source, revision = self.source()
        check_hub(source, revision)  # not cached and no Hub: fail now, not after minutes of retries
        device = resolve_device(self.device)
        kwargs: dict[str, Any] = {"device": device, "trust_remote_code": self.trust_remote_code}
        if revision is not None:
            kwargs["revision"] = revision
        model_kwargs: dict[str, Any] = {**SAFE_WEIGHTS}
        if self.dtype is not None or device.startswith("cuda"):
            model_kwargs["dtype"] = torch_dtype(self.dtype, device)
        refuse_pickle_modules(source)
        try:
            model = st.MultiVectorEncoder(source, model_kwargs=model_kwargs, **kwargs)
        except Exception as e:
            if "trust_remote_code" in str(e) and not self.trust_remote_code:
                raise ConfigurationError(
                    f"{self.spec.alias} runs code from its model repository; pass trust_remote_code=True"
                ) from e
            if (pickled := pickle_weights_error(e, source)) is not None:
                raise pickled from e
            where = (
                f"the model in {source}" if Path(source).is_dir() else f"{source} from the Hugging Face Hub"
            )
            raise ModelNotAvailableError(f"could not load {where} as a MultiVectorEncoder: {e}") from e
        self._model = model

    @property
    def dimensions(self) -> int:
        if self.spec.dimensions is not None:
            return self.spec.dimensions
        dims = self.model.get_embedding_dimension()
        if dims:
            return int(dims)
        return int(self.encode_queries(["dimension probe"], 1)[0].shape[1])

    @property
    def supports_images(self) -> bool:
        return bool(self.model.supports("image"))

    def _encode(self, inputs: list[Any], task: str, batch_size: int) -> list[np.ndarray]:
        method = self.model.encode_query if task == "query" else self.model.encode_document
        with self._lock:
            out = method(
                inputs,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return [normalize_rows(m, drop_zero_rows=True, what=task) for m in out]

    def encode_queries(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        return self._encode(texts, "query", batch_size)

    def encode_documents(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        pieces: list[str] = []
        owners: list[int] = []
        for owner, text in enumerate(texts):
            for piece in self._text_windows(text):
                pieces.append(piece)
                owners.append(owner)
        matrices = self._encode(pieces, "document", batch_size)
        grouped: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, matrix in zip(owners, matrices, strict=True):
            grouped[owner].append(matrix)
        return [np.concatenate(g, axis=0) for g in grouped]

    def _document_budget(self) -> int:
        model = self.model
        transformer = model[0]
        length = getattr(transformer, "document_length", None) or model.max_seq_length or 512
        tok = model.tokenizer
        specials = (
            int(tok.num_special_tokens_to_add(pair=False)) if hasattr(tok, "num_special_tokens_to_add") else 2
        )
        prompt = (model.prompts or {}).get("document") or ""
        prompt_tokens = len(tok(prompt, add_special_tokens=False)["input_ids"]) if prompt else 0
        return max(2, int(length) - specials - prompt_tokens - 1)  # -1: a prefix token some models insert

    def _text_windows(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self._window_spans(text)]

    def _window_spans(self, text: str) -> list[tuple[int, int]]:
        """``[start, end)`` of each window of ``text`` (one window when it fits)."""
        tok = self.model.tokenizer
        budget = self._document_budget()
        fast = bool(getattr(tok, "is_fast", False))
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=fast, verbose=False)
        if len(enc["input_ids"]) <= budget:
            return [(0, len(text))]
        words = (
            spans_from_tokens(enc["offset_mapping"], enc.word_ids(), budget)
            if fast
            else spans_from_words(text, budget)
        )
        return [(w.start, w.end) for w in pack_windows(words, budget, min(self.window_overlap, budget // 2))]

    def token_spans(self, texts: list[str]) -> list[np.ndarray] | None:
        """The characters behind each row of :meth:`encode_documents`: one ``(n_rows, 2)`` array per text.

        Each window is run through the model's own document path (``output_value=None``: its
        token ids and scoring mask, so prompt, special and skiplist tokens are placed exactly as
        when encoding); the ids are matched with the tokenizer's offsets of ``prompt + window``.
        Prompt and special tokens get ``(-1, -1)``. ``None`` (reason logged) for a slow
        tokenizer, an image model, or ids that do not match the tokenizer's.
        """
        model = self.model
        tok = model.tokenizer
        if not getattr(tok, "is_fast", False):
            logger.info("%s has a slow tokenizer: no character offsets for its tokens", self.spec.alias)
            return None
        prompt = (model.prompts or {}).get("document") or ""
        out = []
        for text in texts:
            rows: list[tuple[int, int]] = []
            for start, end in self._window_spans(text):
                window = text[start:end]
                with self._lock:
                    features = model.encode_document([window], output_value=None, show_progress_bar=False)[0]
                ids = features.get("input_ids")
                mask = features.get("attention_mask")
                if ids is None or mask is None:
                    logger.info("%s does not report its token ids; no token spans", self.spec.alias)
                    return None
                ids, mask = ids.tolist(), mask.bool().tolist()
                enc = tok(prompt + window, return_offsets_mapping=True, verbose=False)
                if enc["input_ids"] != ids:
                    logger.info("%s tokenizes documents its own way; no token spans", self.spec.alias)
                    return None
                for keep, (s, e) in zip(mask, enc["offset_mapping"], strict=True):
                    if not keep:
                        continue
                    if e <= s or s < len(prompt):
                        rows.append((-1, -1))
                    else:
                        rows.append((start + s - len(prompt), start + e - len(prompt)))
            out.append(np.asarray(rows, dtype=np.int64).reshape(-1, 2))
        return out

    def encode_images(self, images: list[Any], batch_size: int) -> list[np.ndarray]:
        if not self.supports_images:
            raise ConfigurationError(f"{self.spec.alias} is a text-only model; it cannot embed images")
        return self._encode(images, "document", batch_size)

    def encode_image_texts(self, pairs: list[tuple[Any, str]], batch_size: int) -> list[np.ndarray]:
        raise ConfigurationError(f"{self.spec.alias} takes images or texts, not both in one input")

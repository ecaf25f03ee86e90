"""The Ollama backend of :class:`~pagesight.models.dense_text.MatryoshkaEncoder`.

Talks to an Ollama server through the ``ollama`` client (``pip install "pagesight[ollama]"``).
Before the first embedding it asks the server about the model (``/api/show``), so a server that
is not running or a model that is not pulled fails with a :class:`ModelNotAvailableError` that
says what to run.

Long texts: Ollama's tokenizer is not reachable from the client, so a text is split into
windows of whole words whose *estimated* token count (:func:`~pagesight.models._windows.estimate_tokens`,
``1 + len(word) // 4`` per word, on the high side for prose) fits the model's context (the smaller of
the model's ``context_length`` and its ``num_ctx`` parameter, 2048 when the server reports
neither). Requests go with ``truncate=False``, so the server refuses rather than cuts; if it
still finds a window too long, that window is split in half and retried. Window vectors
(Ollama returns them L2-normalized) are pooled by estimated token count.

Vectors are always requested at full size: windows must be pooled before truncation, and
Ollama's own ``dimensions`` option truncates plainly, while the Nomic recipe layer-normalizes
first. :class:`MatryoshkaEncoder` truncates afterwards.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pagesight._deps import require
from pagesight.errors import ModelNotAvailableError
from pagesight.models._windows import estimate_tokens, pack_windows, pool_windows, spans_from_words
from pagesight.models.base import LoadOptions, ModelBackend
from pagesight.models.registry import ModelSpec

__all__ = ["OllamaBackend", "DEFAULT_CONTEXT", "ollama_address", "show_model"]

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048
"""Context length assumed when the server reports none (Ollama's historical ``num_ctx`` default)."""

_RESERVED = 4  # room for the special tokens the server adds ([CLS], [SEP], ...)
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


def ollama_address(host: str | None) -> str:
    """The server address as error messages name it (``host``, or the default the client uses)."""
    return host or "the default address (OLLAMA_HOST or http://127.0.0.1:11434)"


def show_model(client: Any, name: str, where: str) -> Any:
    """Ask the server about model ``name`` (``/api/show``), turning failures into actionable errors.

    Shared by the embedder here and the chat generator (:mod:`pagesight.models.generate.ollama`)::

        client = ollama.Client(host="http://127.0.0.1:11434")
        shown = show_model(client, "llama3.2", "http://127.0.0.1:11434")
        shown.capabilities   # ["completion", "tools"]

    Args:
        client: an ``ollama.Client``.
        name: the Ollama model name.
        where: the server address, as the messages name it (:func:`ollama_address`).

    Returns:
        The client's ``ShowResponse`` (``capabilities``, ``details``, ``modelinfo``, ``parameters``).

    Raises:
        ModelNotAvailableError: the server does not answer (start it with ``ollama serve``), the
            model is not pulled (``ollama pull <name>``), or the server refuses to describe it.
    """
    ollama = require("ollama", "ollama")
    import httpx  # a dependency of the ollama client

    try:
        return client.show(name)
    except ConnectionError as e:
        raise ModelNotAvailableError(
            f"cannot reach the Ollama server at {where}: start it with `ollama serve` "
            f"(install from https://ollama.com/download), then `ollama pull {name}`"
        ) from e
    except httpx.HTTPError as e:  # a timeout, or a peer that is not an HTTP server
        raise ModelNotAvailableError(
            f"the Ollama server at {where} did not answer properly ({type(e).__name__}: {e}); "
            "is `ollama serve` running there?"
        ) from e
    except ollama.ResponseError as e:
        if e.status_code == 404:
            raise ModelNotAvailableError(
                f"the Ollama server at {where} has no model {name!r}; pull it with `ollama pull {name}`"
            ) from e
        raise ModelNotAvailableError(
            f"the Ollama server at {where} refused to describe {name!r}: {e.error}"
        ) from e


def _is_context_error(text: str) -> bool:
    text = text.lower()
    return "context length" in text or "too long" in text or "exceeds" in text


class OllamaBackend(ModelBackend):
    """Embeds texts with a model served by Ollama; returns pooled full-size vectors.

    Args:
        spec: the resolved model (``spec.ollama_name`` is the Ollama model name).
        options: ``batch_size`` (texts, or windows, per ``/api/embed`` request) and
            ``show_progress`` (a bar over the requests); the torch settings do not apply.
        host: server address (``None``: the client's default, ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``).
        timeout: seconds to wait for the server per request (``None``: no limit).
    """

    def __init__(
        self,
        spec: ModelSpec,
        options: LoadOptions | None = None,
        /,
        *,
        host: str | None = None,
        timeout: float | None = None,
        **kw: Any,
    ) -> None:
        if spec.ollama_name is None:
            raise ModelNotAvailableError(f"{spec.alias} is not an Ollama model")
        super().__init__(spec, options, **kw)
        self.name: str = spec.ollama_name
        self.host = host
        self.batch_size = self.options.batch_size
        self.timeout = timeout
        self.show_progress = self.options.show_progress
        self._client: Any = None
        self._dimensions: int | None = spec.dimensions
        self._context = DEFAULT_CONTEXT

    def model_id(self) -> str:
        return f"ollama:{self.name}"

    def model_revision(self) -> str | None:
        return None

    @property
    def where(self) -> str:
        return ollama_address(self.host)

    def load(self) -> None:
        """Check that the server answers and the model is pulled; read its size and context."""
        with self._lock:
            if self._client is not None:
                return
            ollama = require("ollama", "ollama")
            client = ollama.Client(host=self.host, timeout=self.timeout)
            self._read_show(show_model(client, self.name, self.where))
            self._client = client

    def _read_show(self, shown: Any) -> None:
        capabilities = getattr(shown, "capabilities", None)
        if capabilities and "embedding" not in capabilities:
            raise ModelNotAvailableError(
                f"Ollama model {self.name!r} is not an embedding model "
                f"(capabilities: {', '.join(capabilities)}); "
                "use one such as nomic-embed-text (`ollama pull nomic-embed-text`)"
            )
        info = getattr(shown, "modelinfo", None) or {}
        context: int | None = None
        for key, value in info.items():
            if key.endswith(".embedding_length") and isinstance(value, int):
                if self.spec.dimensions is not None and value != self.spec.dimensions:
                    raise ModelNotAvailableError(
                        f"Ollama's {self.name!r} at {self.where} returns {value}-d vectors, but "
                        f"{self.spec.alias} is {self.spec.dimensions}-d: "
                        "is another model installed under that name?"
                    )
                self._dimensions = value
            if key.endswith(".context_length") and isinstance(value, int):
                context = value
        match = _NUM_CTX.search(getattr(shown, "parameters", None) or "")
        if match:
            num_ctx = int(match.group(1))
            context = min(context, num_ctx) if context else num_ctx
        self._context = context or DEFAULT_CONTEXT

    @property
    def native_dimensions(self) -> int:
        self.load()
        if self._dimensions is None:
            self._dimensions = int(self._request(["dimension probe"]).shape[1])
        return self._dimensions

    def window_budget(self, prefix: str) -> int:
        prefix_tokens = sum(estimate_tokens(w) for w in prefix.split())
        return max(8, self._context - _RESERVED - prefix_tokens)

    def embed(self, texts: Sequence[str], prefix: str, overlap: int) -> np.ndarray:
        """One pooled float64 vector per text: shape ``(len(texts), native_dimensions)``."""
        self.load()
        budget = self.window_budget(prefix)
        overlap = min(overlap, budget // 2)
        pieces: list[str] = []
        owners: list[int] = []
        weights: list[int] = []
        for index, text in enumerate(texts):
            words = spans_from_words(text, budget)
            total = sum(w.tokens for w in words)
            windows = (
                [(text, total)]
                if total <= budget
                else [(text[w.start : w.end], w.tokens) for w in pack_windows(words, budget, overlap)]
            )
            for window, tokens in windows:
                pieces.append(prefix + window)
                owners.append(index)
                weights.append(max(tokens, 1))
        vectors = self._embed_pieces(pieces, prefix)
        owner_arr = np.asarray(owners)
        out = np.empty((len(texts), vectors.shape[1]), dtype=np.float64)
        for index in range(len(texts)):
            rows = np.flatnonzero(owner_arr == index)
            out[index] = pool_windows(vectors[rows], [weights[r] for r in rows])
        return out

    def _embed_pieces(self, pieces: list[str], prefix: str) -> np.ndarray:
        starts: Iterable[int] = range(0, len(pieces), self.batch_size)
        if self.show_progress and len(pieces) > self.batch_size:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Embedding (Ollama)", unit="batch")
        chunks = [self._embed_batch(pieces[i : i + self.batch_size], prefix) for i in starts]
        return np.concatenate(chunks, axis=0)

    def _embed_batch(self, batch: list[str], prefix: str) -> np.ndarray:
        ollama = require("ollama", "ollama")
        try:
            return self._request(batch)
        except ollama.ResponseError as e:
            if e.status_code == 404:
                raise ModelNotAvailableError(
                    f"the Ollama server at {self.where} has no model {self.name!r}; "
                    f"pull it with `ollama pull {self.name}`"
                ) from e
            if not _is_context_error(str(e.error)):
                raise ModelNotAvailableError(f"Ollama could not embed with {self.name!r}: {e.error}") from e
        if len(batch) > 1:
            return np.concatenate([self._embed_batch([piece], prefix) for piece in batch], axis=0)
        return self._split_and_embed(batch[0], prefix)

    def _split_and_embed(self, piece: str, prefix: str) -> np.ndarray:
        """Embed one window the server found too long as two halves, pooled by estimated tokens."""
        body = piece[len(prefix) :] if prefix and piece.startswith(prefix) else piece
        words = spans_from_words(body, 10**9)
        if len(words) < 2:
            raise ModelNotAvailableError(
                f"Ollama model {self.name!r} refused a single word of {len(body)} characters as too long"
            )
        half = sum(w.tokens for w in words) // 2 + 1
        halves = pack_windows(spans_from_words(body, half), half, 0)
        logger.debug("window too long for %s; retrying as %d pieces", self.name, len(halves))
        vectors = np.concatenate(
            [self._embed_batch([prefix + body[h.start : h.end]], prefix) for h in halves]
        )
        return pool_windows(vectors, [h.tokens for h in halves])[None, :]

    def _request(self, batch: list[str]) -> np.ndarray:
        try:
            response = self._client.embed(model=self.name, input=batch, truncate=False)
        except ConnectionError as e:
            raise ModelNotAvailableError(
                f"lost the Ollama server at {self.where}: is `ollama serve` still running?"
            ) from e
        vectors = np.asarray(response.embeddings, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise ModelNotAvailableError(
                f"Ollama returned {vectors.shape[0] if vectors.ndim else 0} vectors for {len(batch)} inputs"
            )
        return vectors

"""Answers written by a model that Ollama serves: text models read the pages' text, vision models
also see the page images.

Install the client with ``pip install "pagesight[ollama]"``, start the server (``ollama serve``)
and pull a model (``ollama pull llama3.2``, or a vision model such as ``ollama pull qwen2.5vl:3b``).

Before the first answer the generator asks the server about the model (``/api/show``): a server
that does not answer or a model that is not pulled fails with a
:class:`~pagesight.errors.ModelNotAvailableError` that says what to run, an embedding-only model
with a :class:`~pagesight.errors.ConfigurationError`. Whether page images are sent is read from the
model's capabilities (``"vision"``) unless ``vision=`` says so.

The prompt is :func:`pagesight.pipelines.prompt.build_prompt`'s: a system message with the citation
rules and a user message with the labelled pages and the question; a vision model's user message
also carries up to ``max_images`` page images (PNG, each scaled to at most ``max_pixels``) in
``images``, in the order the prompt's "image i is [label]" line names them.

Context: Ollama runs a model with a context of ``num_ctx`` tokens (2048 or 4096 by default,
depending on the version) and silently drops the start of a longer prompt, the instructions
first. Unless ``options`` sets ``num_ctx``, the generator estimates the prompt's tokens (text
characters / 3, plus 768 per image, plus 1024 for the answer) and, when that exceeds 2048, asks
for the next power of two, capped at the model's ``context_length``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pagesight._checks import check_int
from pagesight._deps import require
from pagesight.errors import ConfigurationError, GenerationError, ModelNotAvailableError
from pagesight.models.ollama import ollama_address, show_model
from pagesight.pipelines._images import DEFAULT_MAX_PIXELS, png_bytes
from pagesight.pipelines.prompt import SYSTEM_PROMPT, Prompt, prompt_with_images
from pagesight.types import Hit

__all__ = ["OllamaGenerator"]

DEFAULT_OPTIONS: dict[str, Any] = {"temperature": 0}
"""Options sent unless the caller overrides them: deterministic answers."""

_BASE_CONTEXT = 2048  # what an Ollama server may give a model when num_ctx is not set
_TOKENS_PER_IMAGE = 768  # a generous share for one bounded page image
_ANSWER_ROOM = 1024  # tokens left for the answer
_VISION_FAMILIES = ("clip", "mllama")


def _has_vision(shown: Any) -> bool:
    """Vision support read from ``/api/show``: ``capabilities``, else the older hints."""
    capabilities = getattr(shown, "capabilities", None)
    if capabilities:
        return "vision" in capabilities
    details = getattr(shown, "details", None)
    families = [str(f).lower() for f in (getattr(details, "families", None) or [])]
    if any(f in _VISION_FAMILIES for f in families):
        return True
    return any(".vision." in str(key) for key in (getattr(shown, "modelinfo", None) or {}))


def _context_length(shown: Any) -> int | None:
    for key, value in (getattr(shown, "modelinfo", None) or {}).items():
        if str(key).endswith(".context_length") and isinstance(value, int) and value > 0:
            return value
    return None


class OllamaGenerator:
    """Writes cited answers with an Ollama chat model; vision models also get the page images.

    Install: ``pip install "pagesight[ollama]"``, then ``ollama serve`` and ``ollama pull llama3.2``.

    Use::

        from pagesight.models.generate import OllamaGenerator
        from pagesight.pipelines.answer import answer

        generator = OllamaGenerator("qwen2.5vl:3b").check()   # fails now if the model is not pulled
        generator.vision                                       # True: page images are sent
        result = answer("How do I cite R?", searcher, generator, on_token=print)
        result.text        # "Use citation() ... [R-FAQ.pdf p.3]"
        result.citations   # [Citation(source=".../R-FAQ.pdf", page=3, image=".../ab12.png", score=0.71)]

    Args:
        model: the Ollama model name (``llama3.2``, ``qwen2.5vl:3b``, ...).
        host: server address (``None``: ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``).
        vision: send page images: ``None`` decides from the model's capabilities; ``True`` on a
            model that lacks ``"vision"`` is a :class:`ConfigurationError`; ``False`` sends text only.
        max_images: page images sent at most (the best pages that have one).
        max_pixels: each image is scaled down (aspect kept) to at most this many pixels.
        max_chars_per_page: page text in the prompt is cut to this many characters.
        options: Ollama model options (``temperature``, ``num_ctx``, ``num_predict``, ...), merged
            over ``{"temperature": 0}``.
        keep_alive: how long the server keeps the model loaded (``"5m"``, seconds, ...).
        timeout: seconds to wait for the server per request and between streamed pieces
            (``None``: no limit).
        system: the system message.
    """

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        vision: bool | None = None,
        max_images: int = 3,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_chars_per_page: int = 3000,
        options: Mapping[str, Any] | None = None,
        keep_alive: str | float | None = None,
        timeout: float | None = 300.0,
        system: str = SYSTEM_PROMPT,
    ) -> None:
        if not model or not model.strip():
            raise ConfigurationError("`model` must name an Ollama model, e.g. llama3.2")
        check_int("max_images", max_images, least=0)
        check_int("max_pixels", max_pixels, least=1)
        check_int("max_chars_per_page", max_chars_per_page, least=1)
        self.model = model.strip()
        self.host = host
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.max_chars_per_page = max_chars_per_page
        self.options: dict[str, Any] = {**DEFAULT_OPTIONS, **(options or {})}
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.system = system
        self._requested_vision = vision
        self._vision = False
        self._context: int | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OllamaGenerator(model={self.model!r}, host={self.host!r}, vision={self._requested_vision!r})"

    @property
    def where(self) -> str:
        """The server address as messages name it."""
        return ollama_address(self.host)

    def check(self) -> OllamaGenerator:
        """Check that the server answers and the model is pulled and can chat; read its capabilities.

        Runs once (thread-safe); later calls return at once.

        Raises:
            ModelNotAvailableError: the server does not answer, or the model is not pulled.
            ConfigurationError: the model cannot write text (an embedding model), or ``vision=True``
                for a model without vision.
        """
        if self._client is not None:
            return self
        with self._lock:
            if self._client is not None:
                return self
            ollama = require("ollama", "ollama")
            client = ollama.Client(host=self.host, timeout=self.timeout)
            shown = show_model(client, self.model, self.where)
            capabilities = list(getattr(shown, "capabilities", None) or [])
            if capabilities and "completion" not in capabilities:
                raise ConfigurationError(
                    f"Ollama model {self.model!r} cannot write answers (capabilities: "
                    f"{', '.join(capabilities)}); use a chat model such as llama3.2 "
                    "(`ollama pull llama3.2`) or a vision model such as qwen2.5vl:3b"
                )
            has_vision = _has_vision(shown)
            if self._requested_vision and capabilities and not has_vision:
                raise ConfigurationError(
                    f"`vision=True`, but Ollama model {self.model!r} does not take images "
                    f"(capabilities: {', '.join(capabilities)}); use a vision model such as "
                    "qwen2.5vl:3b, or leave `vision` unset"
                )
            self._vision = has_vision if self._requested_vision is None else self._requested_vision
            self._context = _context_length(shown)
            self._client = client
        return self

    @property
    def vision(self) -> bool:
        """Whether page images are sent (asks the server on first use when ``vision`` was not given)."""
        if self._requested_vision is not None and self._client is None:
            return self._requested_vision
        self.check()
        return self._vision

    # -- the request ------------------------------------------------------------------------------

    def prompt(self, question: str, pages: Sequence[Hit]) -> tuple[Prompt, list[bytes]]:
        """The prompt for ``question`` and the PNG bytes of the images it attaches, in its order."""
        prompt, images = prompt_with_images(
            question,
            pages,
            images=self.vision,
            max_images=self.max_images,
            max_pixels=self.max_pixels,
            max_chars_per_page=self.max_chars_per_page,
            system=self.system,
        )
        return prompt, [png_bytes(img) for img in images]

    def _request(self, question: str, pages: Sequence[Hit]) -> dict[str, Any]:
        self.check()
        prompt, images = self.prompt(question, pages)
        user: dict[str, Any] = {"role": "user", "content": prompt.user}
        if images:
            user["images"] = images
        messages = [{"role": "system", "content": prompt.system}, user]
        options = dict(self.options)
        if "num_ctx" not in options:
            needed = (
                (len(prompt.system) + len(prompt.user)) // 3 + _TOKENS_PER_IMAGE * len(images) + _ANSWER_ROOM
            )
            if needed > _BASE_CONTEXT:
                num_ctx = 1 << (needed - 1).bit_length()
                options["num_ctx"] = min(num_ctx, self._context) if self._context else num_ctx
        return {"model": self.model, "messages": messages, "options": options, "keep_alive": self.keep_alive}

    def _failure(self, e: BaseException) -> ModelNotAvailableError | GenerationError:
        ollama = require("ollama", "ollama")
        if isinstance(e, ollama.ResponseError):
            if e.status_code == 404:
                return ModelNotAvailableError(
                    f"the Ollama server at {self.where} has no model {self.model!r}; "
                    f"pull it with `ollama pull {self.model}`"
                )
            status = f" (HTTP {e.status_code})" if e.status_code > 0 else ""
            return GenerationError(f"Ollama could not answer with {self.model!r}{status}: {e.error}")
        return GenerationError(
            f"lost the Ollama server at {self.where} while {self.model!r} was answering "
            f"({type(e).__name__}: {e}); is `ollama serve` still running?"
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        ollama = require("ollama", "ollama")
        import httpx  # a dependency of the ollama client

        return (ollama.ResponseError, ConnectionError, httpx.HTTPError)

    # -- Generator protocol -----------------------------------------------------------------------

    def generate(self, question: str, pages: Sequence[Hit]) -> str:
        """The whole answer, citing pages as ``[<file> p.<N>]``.

        Raises:
            ModelNotAvailableError: the model was removed from the server.
            GenerationError: the server failed or went away while answering.
        """
        request = self._request(question, pages)
        try:
            response = self._client.chat(stream=False, **request)
        except self._errors() as e:
            raise self._failure(e) from e
        return str(response.message.content or "")

    def stream(self, question: str, pages: Sequence[Hit]) -> Iterator[str]:
        """The answer piece by piece as the model writes it; the pieces join to :meth:`generate`'s text.

        Raises:
            ModelNotAvailableError, GenerationError: as :meth:`generate`, also when the server drops
                mid-answer (the pieces received before stay handed out).
        """
        request = self._request(question, pages)
        try:
            for chunk in self._client.chat(stream=True, **request):
                piece = chunk.message.content if chunk.message is not None else None
                if piece:
                    yield str(piece)
        except self._errors() as e:
            raise self._failure(e) from e

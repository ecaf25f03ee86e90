"""An Ollama-protocol HTTP server for tests, backed by real sentence-transformers models.

It speaks what the ``ollama`` Python client uses for embeddings, the way Ollama does:

- ``GET /api/version`` -> ``{"version": ...}``
- ``GET /api/tags`` -> ``{"models": [{"name", "model", "modified_at", "size", "digest", "details"}]}``
- ``POST /api/show`` ``{"model"}`` -> ``{"modelfile", "parameters", "template", "details", "model_info",
  "capabilities", "modified_at"}``; 404 ``{"error": "model 'x' not found"}``
- ``POST /api/embed`` ``{"model", "input" (str or list), "truncate", "dimensions", "options", "keep_alive"}``
  -> ``{"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}``; vectors are
  L2-normalized, ``dimensions`` truncates and renormalizes, ``truncate=false`` with an input over
  the context length is a 400, an unknown model a 404
  ``{"error": "model \\"x\\" not found, try pulling it first"}``.

Every request is recorded (``requests``), and every text that reached a model (``inputs``), so
tests can assert which prefix the server saw.

Chat models (``chat_models``: name -> :class:`ChatModel`) answer the way Ollama's chat models do:

- ``/api/tags`` lists them; ``/api/show`` reports ``capabilities`` ``["completion"]`` (plus
  ``"vision"`` for a vision model; the field is left out when ``report_capabilities=False``, as
  older servers did), ``details.families`` (``[family]``, plus ``"clip"`` for vision) and
  ``model_info`` with ``general.architecture``, ``<arch>.context_length`` (and
  ``<arch>.vision.block_count`` for vision).
- ``POST /api/chat`` ``{"model", "messages": [{"role", "content", "images"?}], "stream" (default
  true), "options", "format", "keep_alive", "tools", "think"}``. The reply text is
  ``ChatModel.respond(messages)`` (messages as received, ``images`` base64 strings), by default
  :func:`citing_reply`. Streaming sends NDJSON over chunked transfer encoding: one
  ``{"model", "created_at", "message": {"role": "assistant", "content": <piece>}, "done": false}``
  per word-ish piece, then ``{"message": {..., "content": ""}, "done": true, "done_reason":
  "stop", "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
  "eval_count", "eval_duration"}``. Not streaming: one object with the whole content, done and
  the counters. No messages: ``done_reason "load"`` (Ollama's "load the model" call).
- ``POST /api/generate`` ``{"model", "prompt", "system", "images"?, "stream", ...}`` likewise, the
  text in ``"response"``; ``respond`` gets ``[{"role": "system", ...}, {"role": "user", "content":
  prompt, "images"?}]``.
- Errors: unknown model 404 ``{"error": "model \\"x\\" not found, try pulling it first"}``; an
  embedding model 400 ``does not support chat``; ``images`` for a model that is not vision 400
  ``model "x" does not support images``; an image that is not base64 of a PNG or JPEG 400;
  ``respond`` raising 500 ``{"error": str(exc)}``; ``ChatModel.drop_after=n`` cuts a streamed reply
  after ``n`` pieces by closing the connection (a crashed server).

Every chat request body is recorded in ``chats`` and the ``(width, height)`` of its decoded
images in ``chat_images`` (one list per request, same index, ``[]`` without images or when the
request was refused before decoding); ``/api/generate`` in ``generations`` and ``generate_images``.

Use::

    with OllamaDouble({"all-minilm": sentence_transformer}) as server:
        client = ollama.Client(host=server.url)

    with OllamaDouble({}, chat_models={"llama3.2": ChatModel(), "qwen2.5vl:3b": ChatModel(vision=True)}) as s:
        reply = ollama.Client(host=s.url).chat("llama3.2", messages=[{"role": "user", "content": "hi"}])
        s.chats[-1]["messages"]; s.chat_images[-1]
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["ChatModel", "OllamaDouble", "RecordedRequest", "citing_reply", "reply_pieces"]

VERSION = "0.6.3"


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


@dataclass
class ChatModel:
    """A chat model the double serves.

    Attributes:
        vision: accepts ``images`` (``/api/show`` capabilities ``["completion", "vision"]``).
        respond: messages (as received; ``images`` are base64 strings) -> the reply text;
            ``None``: :func:`citing_reply`. An exception it raises becomes a 500 ``{"error"}``.
        context_length: ``model_info["<arch>.context_length"]``.
        family: the architecture (``general.architecture``, ``details.family``).
        report_capabilities: ``False`` leaves ``capabilities`` out of ``/api/show`` (older servers).
        drop_after: close the connection after this many streamed pieces, without the final line.
    """

    vision: bool = False
    respond: Callable[[list[dict[str, Any]]], str] | None = None
    context_length: int = 8192
    family: str = "llama"
    report_capabilities: bool = True
    drop_after: int | None = None

    def capabilities(self) -> list[str]:
        return ["completion", "vision"] if self.vision else ["completion"]


_PAGE_BLOCK = re.compile(
    r"^Page \[([^\]\n]+)\]:\n(.*?)(?=\n\nPage \[|\n\nThe attached images|\n\nNo pages|\n\nQuestion:|\Z)",
    re.MULTILINE | re.DOTALL,
)
_QUESTION = re.compile(r"^Question:[ \t]*(.*)$", re.MULTILINE)
_WORD = re.compile(r"[a-z]{3,}")
_FIRST_SENTENCE = re.compile(r"^(.*?[.!?])(?:\s|$)", re.DOTALL)


def citing_reply(messages: list[dict[str, Any]]) -> str:
    """A deterministic reader of the pagesight prompt (the default ``respond``).

    Reads the ``Page [<label>]:\\n<text>`` blocks and the ``Question:`` line of the last user
    message, picks the page sharing the most lower-cased words of 3+ letters with the question
    (ties: the first), and answers with that page's first sentence and its label:
    ``"R is a language for statistics. [R-FAQ.pdf p.2]"``. No page blocks: ``"The pages do not say."``.
    """
    users = [m for m in messages if m.get("role") == "user"]
    content = str(users[-1].get("content") or "") if users else ""
    pages = [(label, " ".join(text.split())) for label, text in _PAGE_BLOCK.findall(content)]
    if not pages:
        return "The pages do not say."
    questions = _QUESTION.findall(content)
    q_words = set(_WORD.findall(questions[-1].lower())) if questions else set()
    best_label, best_text, best_score = pages[0][0], pages[0][1], -1
    for label, text in pages:
        score = len(q_words & set(_WORD.findall(text.lower())))
        if score > best_score:
            best_label, best_text, best_score = label, text, score
    first = _FIRST_SENTENCE.match(best_text)
    sentence = first.group(1) if first else best_text
    return f"{sentence} [{best_label}]"


def reply_pieces(text: str) -> list[str]:
    """The reply split into word-ish pieces (each word with the spaces after it); ``"".join`` is ``text``."""
    pieces = [p for p in re.split(r"(?<=\s)(?=\S)", text) if p]
    return pieces or [""]


def _created_at() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class _ImageError(ValueError):
    pass


def _image_size(data: Any) -> tuple[int, int]:
    """Decode one base64 image the way Ollama must: PNG or JPEG, else :class:`_ImageError`."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, str):
        raise _ImageError("image must be a base64-encoded string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _ImageError(f"illegal base64 data: {e}") from e
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise _ImageError(f"unsupported image format {img.format}")
            img.load()
            return img.size
    except (OSError, UnidentifiedImageError) as e:
        raise _ImageError(f"failed to decode image: {e}") from e


class OllamaDouble:
    """A loopback Ollama server; ``models`` maps Ollama names to sentence-transformers models.

    Args:
        models: name (``"all-minilm"`` or ``"all-minilm:latest"``) -> ``SentenceTransformer``.
        chat_models: name -> :class:`ChatModel`, served by ``/api/chat`` and ``/api/generate``.
        context_length: tokens per input (special tokens included); ``None``: each model's max_seq_length.
        num_ctx: reported in ``/api/show`` ``parameters`` when set.
        capabilities: what ``/api/show`` reports for every embedding model.
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        *,
        chat_models: Mapping[str, ChatModel] | None = None,
        context_length: int | None = None,
        num_ctx: int | None = None,
        capabilities: tuple[str, ...] = ("embedding",),
    ) -> None:
        self.models = {_canonical(k): v for k, v in models.items()}
        self.chat_models = {_canonical(k): v for k, v in (chat_models or {}).items()}
        self.context_length = context_length
        self.num_ctx = num_ctx
        self.capabilities = capabilities
        self.requests: list[RecordedRequest] = []
        self.inputs: list[str] = []
        self.chats: list[dict[str, Any]] = []
        self.chat_images: list[list[tuple[int, int]]] = []
        self.generations: list[dict[str, Any]] = []
        self.generate_images: list[list[tuple[int, int]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> OllamaDouble:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ollama-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OllamaDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.inputs.clear()
            self.chats.clear()
            self.chat_images.clear()
            self.generations.clear()
            self.generate_images.clear()

    # -- model side -------------------------------------------------------------------------------

    def find(self, name: str) -> Any | None:
        return self.models.get(_canonical(name))

    def find_chat(self, name: str) -> ChatModel | None:
        return self.chat_models.get(_canonical(name))

    def describe_chat(self, name: str, model: ChatModel) -> dict[str, Any]:
        families = [model.family, "clip"] if model.vision else [model.family]
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": model.family,
            "families": families,
            "parameter_size": "3.8B" if model.vision else "3.2B",
            "quantization_level": "Q4_K_M",
        }
        info: dict[str, Any] = {
            "general.architecture": model.family,
            "general.parameter_count": 3_212_749_888,
            f"{model.family}.context_length": model.context_length,
            f"{model.family}.embedding_length": 3072,
        }
        if model.vision:
            info[f"{model.family}.vision.block_count"] = 32
        return {"details": details, "model_info": info, "digest": hashlib.sha256(name.encode()).hexdigest()}

    def context_of(self, model: Any) -> int:
        return int(self.context_length or model.max_seq_length or 512)

    def count_tokens(self, model: Any, text: str) -> int:
        return len(model.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def embed(self, model: Any, texts: list[str]) -> np.ndarray:
        with self._lock:
            vectors = model.encode(texts, prompt="", convert_to_numpy=True, normalize_embeddings=False)
        vectors = np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def describe(self, name: str, model: Any) -> dict[str, Any]:
        dims = int(model.get_embedding_dimension())
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": "bert",
            "families": ["bert"],
            "parameter_size": "23M",
            "quantization_level": "F16",
        }
        return {"dims": dims, "details": details, "digest": hashlib.sha256(name.encode()).hexdigest()}


def _make_handler(server: OllamaDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _send(self, status: int, payload: Mapping[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return {}
            return data if isinstance(data, dict) else {}

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            with server._lock:
                server.requests.append(RecordedRequest("GET", self.path))
            if self.path == "/api/version":
                self._send(200, {"version": VERSION})
            elif self.path == "/api/tags":
                models = []
                for name, model in server.models.items():
                    d = server.describe(name, model)
                    models.append(
                        {
                            "name": name,
                            "model": name,
                            "modified_at": "2025-01-01T00:00:00Z",
                            "size": 45_000_000,
                            "digest": d["digest"],
                            "details": d["details"],
                        }
                    )
                for name, chat in server.chat_models.items():
                    d = server.describe_chat(name, chat)
                    models.append(
                        {
                            "name": name,
                            "model": name,
                            "modified_at": "2025-01-01T00:00:00Z",
                            "size": 2_019_393_189,
                            "digest": d["digest"],
                            "details": d["details"],
                        }
                    )
                self._send(200, {"models": models})
            else:
                self._send(404, {"error": "404 page not found"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self._body()
            with server._lock:
                server.requests.append(RecordedRequest("POST", self.path, body))
            if self.path == "/api/show":
                self._show(body)
            elif self.path == "/api/embed":
                self._embed(body)
            elif self.path == "/api/chat":
                self._chat(body)
            elif self.path == "/api/generate":
                self._generate(body)
            else:
                self._send(404, {"error": "404 page not found"})

        def _show(self, body: dict[str, Any]) -> None:
            name = str(body.get("model") or body.get("name") or "")
            chat = server.find_chat(name)
            if chat is not None:
                self._show_chat(name, chat)
                return
            model = server.find(name)
            if model is None:
                self._send(404, {"error": f"model '{name}' not found"})
                return
            d = server.describe(name, model)
            parameters = f"num_ctx                        {server.num_ctx}" if server.num_ctx else ""
            self._send(
                200,
                {
                    "license": "Apache-2.0",
                    "modelfile": f"FROM {name}\n",
                    "parameters": parameters,
                    "template": "{{ .Prompt }}",
                    "details": d["details"],
                    "model_info": {
                        "general.architecture": "bert",
                        "general.parameter_count": 22_565_376,
                        "bert.context_length": server.context_of(model),
                        "bert.embedding_length": d["dims"],
                        "bert.pooling_type": 1,
                    },
                    "capabilities": list(server.capabilities),
                    "modified_at": "2025-01-01T00:00:00Z",
                },
            )

        def _embed(self, body: dict[str, Any]) -> None:
            started = time.perf_counter_ns()
            name = str(body.get("model") or "")
            model = server.find(name)
            if model is None:
                self._send(404, {"error": f'model "{name}" not found, try pulling it first'})
                return
            raw = body.get("input", [])
            texts = [raw] if isinstance(raw, str) else list(raw or [])
            if not all(isinstance(t, str) for t in texts):
                self._send(400, {"error": "invalid input type"})
                return
            truncate = body.get("truncate")
            truncate = True if truncate is None else bool(truncate)
            context = server.context_of(model)
            counts = [server.count_tokens(model, t) for t in texts]
            if not truncate and any(c > context for c in counts):
                self._send(400, {"error": "the input length exceeds the context length"})
                return
            with server._lock:
                server.inputs.extend(texts)
            if texts:
                vectors = server.embed(model, texts)
                dims = body.get("dimensions")
                if isinstance(dims, int) and 0 < dims < vectors.shape[1]:
                    vectors = vectors[:, :dims]
                    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
                embeddings = vectors.astype(np.float32).tolist()
            else:
                embeddings = []
            self._send(
                200,
                {
                    "model": name,
                    "embeddings": embeddings,
                    "total_duration": time.perf_counter_ns() - started,
                    "load_duration": 1000,
                    "prompt_eval_count": int(sum(min(c, context) for c in counts)),
                },
            )

        def _show_chat(self, name: str, chat: ChatModel) -> None:
            d = server.describe_chat(name, chat)
            shown: dict[str, Any] = {
                "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT",
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{- range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}",
                "details": d["details"],
                "model_info": d["model_info"],
                "modified_at": "2025-01-01T00:00:00Z",
            }
            if chat.report_capabilities:
                shown["capabilities"] = chat.capabilities()
            self._send(200, shown)

        # -- chat and generate ------------------------------------------------------------------

        def _chat_model(self, name: str, has_images: bool) -> ChatModel | None:
            """The chat model, or ``None`` after sending the error Ollama sends."""
            chat = server.find_chat(name)
            if chat is None:
                if server.find(name) is not None:
                    self._send(400, {"error": f'"{name}" does not support chat'})
                else:
                    self._send(404, {"error": f'model "{name}" not found, try pulling it first'})
                return None
            if has_images and not chat.vision:
                self._send(400, {"error": f'model "{name}" does not support images'})
                return None
            return chat

        def _decode_images(self, groups: list[Any], sizes: list[tuple[int, int]]) -> bool:
            """Append each image's size to ``sizes``; on a bad one send the 400 and return False."""
            for images in groups:
                if not isinstance(images, list):
                    self._send(400, {"error": "images must be a list of base64-encoded strings"})
                    return False
                for image in images:
                    try:
                        size = _image_size(image)
                    except _ImageError as e:
                        self._send(400, {"error": str(e)})
                        return False
                    with server._lock:
                        sizes.append(size)
            return True

        def _chat(self, body: dict[str, Any]) -> None:
            started = time.perf_counter_ns()
            name = str(body.get("model") or "")
            messages = body.get("messages") or []
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                self._send(400, {"error": "invalid message format"})
                return
            groups = [m["images"] for m in messages if m.get("images") is not None]
            sizes: list[tuple[int, int]] = []
            with server._lock:
                server.chats.append(body)
                server.chat_images.append(sizes)
            chat = self._chat_model(name, any(groups))
            if chat is None or not self._decode_images(groups, sizes):
                return
            self._reply(body, chat, messages, "chat", started)

        def _generate(self, body: dict[str, Any]) -> None:
            started = time.perf_counter_ns()
            name = str(body.get("model") or "")
            images = body.get("images")
            sizes: list[tuple[int, int]] = []
            with server._lock:
                server.generations.append(body)
                server.generate_images.append(sizes)
            chat = self._chat_model(name, bool(images))
            if chat is None or not self._decode_images([images] if images is not None else [], sizes):
                return
            messages: list[dict[str, Any]] = []
            if body.get("system"):
                messages.append({"role": "system", "content": str(body["system"])})
            if body.get("prompt") is not None:
                user: dict[str, Any] = {"role": "user", "content": str(body["prompt"])}
                if images:
                    user["images"] = images
                messages.append(user)
            self._reply(body, chat, messages, "generate", started)

        def _frame(self, name: str, kind: str, piece: str, done: bool) -> dict[str, Any]:
            frame: dict[str, Any] = {"model": name, "created_at": _created_at()}
            if kind == "chat":
                frame["message"] = {"role": "assistant", "content": piece}
            else:
                frame["response"] = piece
            frame["done"] = done
            return frame

        def _reply(
            self,
            body: dict[str, Any],
            chat: ChatModel,
            messages: list[dict[str, Any]],
            kind: str,
            started: int,
        ) -> None:
            name = str(body.get("model") or "")
            stream = body.get("stream")
            stream = True if stream is None else bool(stream)
            if not messages:  # Ollama's "load the model" call
                frame = self._frame(name, kind, "", True)
                frame["done_reason"] = "load"
                self._send(200, frame)
                return
            try:
                text = (chat.respond or citing_reply)(messages)
            except Exception as e:  # noqa: BLE001 - the server reports whatever the model did
                self._send(500, {"error": str(e)})
                return
            pieces = reply_pieces(text)
            prompt_words = sum(len(str(m.get("content") or "").split()) for m in messages)
            final = self._frame(name, kind, "" if stream else text, True)
            final.update(
                done_reason="stop",
                total_duration=time.perf_counter_ns() - started,
                load_duration=1_000_000,
                prompt_eval_count=prompt_words,
                prompt_eval_duration=2_000_000,
                eval_count=len(pieces),
                eval_duration=3_000_000,
            )
            if kind == "generate":
                final["context"] = [1, 2, 3]
            if not stream:
                self._send(200, final)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for index, piece in enumerate(pieces):
                    if chat.drop_after is not None and index >= chat.drop_after:
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self._chunk(self._frame(name, kind, piece, False))
                self._chunk(final)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _chunk(self, frame: dict[str, Any]) -> None:
            data = json.dumps(frame).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler

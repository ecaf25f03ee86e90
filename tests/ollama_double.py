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

Use::

    with OllamaDouble({"all-minilm": sentence_transformer}) as server:
        client = ollama.Client(host=server.url)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["OllamaDouble", "RecordedRequest"]

VERSION = "0.6.3"


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)


def _canonical(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class OllamaDouble:
    """A loopback Ollama server; ``models`` maps Ollama names to sentence-transformers models.

    Args:
        models: name (``"all-minilm"`` or ``"all-minilm:latest"``) -> ``SentenceTransformer``.
        context_length: tokens per input (special tokens included); ``None``: each model's max_seq_length.
        num_ctx: reported in ``/api/show`` ``parameters`` when set.
        capabilities: what ``/api/show`` reports for every model.
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        *,
        context_length: int | None = None,
        num_ctx: int | None = None,
        capabilities: tuple[str, ...] = ("embedding",),
    ) -> None:
        self.models = {_canonical(k): v for k, v in models.items()}
        self.context_length = context_length
        self.num_ctx = num_ctx
        self.capabilities = capabilities
        self.requests: list[RecordedRequest] = []
        self.inputs: list[str] = []
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

    # -- model side -------------------------------------------------------------------------------

    def find(self, name: str) -> Any | None:
        return self.models.get(_canonical(name))

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
            else:
                self._send(404, {"error": "404 page not found"})

        def _show(self, body: dict[str, Any]) -> None:
            name = str(body.get("model") or body.get("name") or "")
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

    return Handler

"""The Ollama backend against a loopback Ollama-protocol server backed by the real MiniLM."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest

from pagesight.errors import ModelNotAvailableError
from pagesight.models import MatryoshkaEncoder

pytestmark = pytest.mark.enable_socket

ollama = pytest.importorskip("ollama")

LONG_HEAD = " ".join(f"Sentence {i} describes the harbour, its cranes and its ships." for i in range(60))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the double speaks Ollama's protocol -----------------------------------------------------------


def test_double_answers_the_real_client(ollama_server: Any) -> None:
    client = ollama.Client(host=ollama_server.url)
    names = {m.model for m in client.list().models}
    assert {"all-minilm:latest", "nomic-minilm:latest"} <= names
    shown = client.show("all-minilm")
    assert shown.modelinfo["bert.embedding_length"] == 384 and shown.capabilities == ["embedding"]
    full = np.asarray(client.embed(model="all-minilm", input="hello world").embeddings)
    assert full.shape == (1, 384) and np.isclose(np.linalg.norm(full), 1.0, atol=1e-5)
    cut = np.asarray(client.embed(model="all-minilm", input=["hello world"], dimensions=64).embeddings)
    np.testing.assert_allclose(cut[0], full[0, :64] / np.linalg.norm(full[0, :64]), atol=1e-5)
    assert ollama_server.inputs == ["hello world", "hello world"]


def test_double_refuses_like_ollama(ollama_server: Any) -> None:
    client = ollama.Client(host=ollama_server.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="missing", input=["x"])
    assert info.value.status_code == 404 and "try pulling it first" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="all-minilm", input=[LONG_HEAD], truncate=False)
    assert info.value.status_code == 400 and "context length" in info.value.error
    assert len(client.embed(model="all-minilm", input=[LONG_HEAD]).embeddings) == 1  # truncate defaults on


# -- prefixes ---------------------------------------------------------------------------------------


def test_nomic_prefixes_reach_the_server(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("ollama:nomic-minilm", ollama_host=ollama_server.url)
    encoder.encode_queries(["where are the cranes"])
    encoder.encode_documents(["the cranes are in the harbour"])
    assert ollama_server.inputs == [
        "search_query: where are the cranes",
        "search_document: the cranes are in the harbour",
    ]


def test_no_prefix_for_minilm_and_overrides_apply(ollama_server: Any) -> None:
    MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url).encode_queries(["q"])
    MatryoshkaEncoder(
        "ollama:nomic-minilm", ollama_host=ollama_server.url, prefixes={"search_document": "passage: "}
    ).encode_documents(["d"])
    assert ollama_server.inputs == ["q", "passage: d"]


def test_embed_requests_ask_for_full_vectors_without_truncation(ollama_server: Any) -> None:
    MatryoshkaEncoder("ollama:nomic-minilm", ollama_host=ollama_server.url, dimensions=64).encode_documents(
        ["x"]
    )
    embeds = [r.body for r in ollama_server.requests if r.path == "/api/embed"]
    assert embeds and all(body["truncate"] is False and body.get("dimensions") is None for body in embeds)


# -- vectors ----------------------------------------------------------------------------------------


def test_same_vectors_as_sentence_transformers(ollama_server: Any, minilm: MatryoshkaEncoder) -> None:
    texts = ["the harbour has three cranes", "interest rates rose again"]
    via_ollama = MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url)
    np.testing.assert_allclose(via_ollama.encode_documents(texts), minilm.encode_documents(texts), atol=1e-5)
    cut = MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url, dimensions=128)
    out = cut.encode_queries(texts)
    assert out.shape == (2, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, MatryoshkaEncoder(dimensions=128).encode_queries(texts), atol=1e-5)
    assert cut.info.model == "ollama:all-minilm" and cut.info.revision is None and cut.info.dimensions == 128


def test_backend_ollama_maps_the_alias(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("all-minilm-l6-v2", backend="ollama", ollama_host=ollama_server.url)
    assert encoder.encode_documents(["x"]).shape == (1, 384)
    assert any(r.body.get("model") == "all-minilm" for r in ollama_server.requests if r.path == "/api/embed")


def test_ranking_through_ollama(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("ollama:nomic-minilm", ollama_host=ollama_server.url)
    docs = encoder.encode_documents(
        [
            "The invoice total is 1,250 euros.",
            "Plants turn sunlight into energy.",
            "The match ended in a draw.",
        ]
    )
    assert int(np.argmax(docs @ encoder.encode_queries(["how much is the bill?"])[0])) == 0


def test_long_text_is_windowed_by_estimated_tokens(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url)
    a = LONG_HEAD + " In the end the whole town celebrated a fishing festival with music."
    b = LONG_HEAD + " In the end the bank raised interest rates and bond prices fell."
    va, vb = encoder.encode_documents([a, b])
    assert float(va @ vb) < 0.9999
    assert len(ollama_server.inputs) >= 6  # both texts went as several windows
    assert any(t.endswith("fishing festival with music.") for t in ollama_server.inputs)
    tokenizer = ollama_server.models["all-minilm:latest"].tokenizer
    assert all(len(tokenizer(t, verbose=False)["input_ids"]) <= 256 for t in ollama_server.inputs)


def test_window_the_server_finds_too_long_is_split_and_retried(ollama_server: Any) -> None:
    # hex-like words cost far more real tokens than the estimate, so the first windows are refused
    text = " ".join(f"{i:x}q{i * 7919:x}z{i * 104729:x}" for i in range(150))
    encoder = MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url)
    out = encoder.encode_documents([text])
    assert out.shape == (1, 384) and np.isclose(np.linalg.norm(out), 1.0, atol=1e-5)
    sent = [t for r in ollama_server.requests if r.path == "/api/embed" for t in r.body["input"]]
    refused = [t for t in sent if t not in ollama_server.inputs]
    assert refused and ollama_server.inputs  # refused at first, then accepted in smaller pieces
    recorded = "".join(ollama_server.inputs)
    assert text.split()[-1] in recorded  # the tail was embedded


# -- errors -----------------------------------------------------------------------------------------


def test_no_server_says_ollama_serve() -> None:
    encoder = MatryoshkaEncoder("nomic-embed-text", ollama_host=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ModelNotAvailableError, match="`ollama serve`"):
        encoder.encode_documents(["x"])


def test_unpulled_model_says_ollama_pull(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("ollama:mxbai-embed-large", ollama_host=ollama_server.url)
    with pytest.raises(ModelNotAvailableError, match="`ollama pull mxbai-embed-large`"):
        encoder.load()


def test_wrong_model_under_a_known_name_is_refused(ollama_server: Any) -> None:
    encoder = MatryoshkaEncoder("nomic-embed-text", ollama_host=ollama_server.url)
    with pytest.raises(ModelNotAvailableError, match="384-d.*768-d"):
        encoder.load()


def test_ollama_dimensions_validated_after_show(ollama_server: Any) -> None:
    from pagesight.errors import ConfigurationError

    encoder = MatryoshkaEncoder("ollama:all-minilm", ollama_host=ollama_server.url, dimensions=500)
    with pytest.raises(ConfigurationError, match="between 1 and 384 for ollama:all-minilm, got 500"):
        encoder.load()

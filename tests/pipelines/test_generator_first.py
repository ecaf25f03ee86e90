"""``ask`` with an Ollama generator checks the server and the model before it retrieves (issue 15 item 9)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pagesight import Index
from pagesight.cli import main
from pagesight.errors import ModelNotAvailableError
from tests.pipelines.conftest import TEXT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def refused() -> str:
    """The address of a loopback port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.enable_socket
def test_a_server_that_is_down_fails_before_retrieval(store, refused) -> None:
    index = Index.open(store, ollama_host=refused)
    with pytest.raises(ModelNotAvailableError, match="cannot reach the Ollama server at .*ollama serve"):
        index.ask("Why stake tomato plants?", f"ollama:{TEXT}")
    assert not index.encoder._loaded  # nothing was retrieved: the embedding model never loaded


def test_a_model_that_is_not_pulled_fails_before_retrieval(store, server) -> None:
    index = Index.open(store, ollama_host=server.url)
    with pytest.raises(ModelNotAvailableError, match="pull it with `ollama pull gemma9:1b`"):
        index.ask("Why stake tomato plants?", "ollama:gemma9:1b")
    assert not index.encoder._loaded
    assert [r.path for r in server.requests] == ["/api/show"]  # asked about the model, nothing else


def test_a_pulled_model_answers_after_the_check(store, server) -> None:
    answer = Index.open(store, ollama_host=server.url).ask("Why stake tomato plants?", f"ollama:{TEXT}")
    assert answer.citations
    paths = [r.path for r in server.requests]
    assert paths[0] == "/api/show" and paths[-1] == "/api/chat"


@pytest.mark.enable_socket
def test_cli_ask_with_the_server_down_exits_1_with_the_fix(tmp_path, corpus, refused, capsys) -> None:
    store = tmp_path / "store"
    assert main(["index", str(corpus["garden"]), "--store", str(store), "-q"]) == 0
    capsys.readouterr()
    code = main(["ask", "why stake tomatoes", "--store", str(store), "--generator", f"ollama:{TEXT}",
                 "--ollama-host", refused])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "cannot reach the Ollama server" in err and "ollama serve" in err


@pytest.mark.enable_socket
def test_the_ollama_example_checks_the_server_before_indexing(tmp_path, refused) -> None:
    store = tmp_path / "store"
    env = {**os.environ, "OLLAMA_HOST": refused}
    proc = subprocess.run(
        [sys.executable, "examples/ollama_answer.py", "--store", str(store)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "ollama serve" in proc.stderr
    assert "indexed" not in proc.stdout and not store.exists()  # nothing was indexed first

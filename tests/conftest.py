"""Shared test configuration: offline model path, hub off, telemetry off, loopback URLs allowed."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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

"""Reranking inside search and the CLI: the reranker re-scores the retrieved pages before the top k."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pagesight.cli import main
from pagesight.errors import ConfigurationError
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore


@pytest.fixture
def store(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    report = ingest([corpus["garden"], corpus["network"]], store, encoder, show_progress=False)
    assert report.ok
    return store


@pytest.fixture(scope="module")
def nanoranker():
    from pagesight.models.rerank import Reranker

    return Reranker("nanoranker").load()


def test_search_returns_the_rerankers_order_and_scores_over_the_candidates(store, encoder, nanoranker):
    query = "which firewall rules allow ssh on port 22"
    plain = PageSearcher(store, encoder, mode="hybrid")
    reranked = PageSearcher(store, encoder, mode="hybrid", reranker=nanoranker, rerank_candidates=5)

    candidates = plain.search(query, k=5)
    hits = reranked.search(query, k=3)

    # Known answer: the reranker's own scores over the same five candidates, best three, best first.
    expected = nanoranker.score(query, [h.text for h in candidates])
    order = np.argsort(-expected, kind="stable")[:3]
    assert [h.id for h in hits] == [candidates[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], expected[order], rtol=1e-5)
    assert hits[0].source.endswith("network.pdf") and hits[0].page == 2
    assert all(0.0 <= h.score <= 1.0 for h in hits)


def test_rerank_candidates_are_at_least_k_and_must_be_positive(store, encoder, nanoranker):
    searcher = PageSearcher(store, encoder, reranker=nanoranker, rerank_candidates=1)
    assert len(searcher.search("compost heap", k=3)) == 3  # k wins over a smaller candidate count
    with pytest.raises(ConfigurationError, match="rerank_candidates"):
        PageSearcher(store, encoder, reranker=nanoranker, rerank_candidates=0)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_search_and_ask_take_a_reranker(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    code, _, err = _run(capsys, "index", str(corpus["garden"].parent), "--store", str(store), "-q")
    assert code == 0, err
    query = "how often should the compost heap be turned"
    rerank = ("--store", str(store), "--reranker", "nanoranker", "--json")
    code, out, err = _run(capsys, "search", query, *rerank)
    assert code == 0, err
    hits = json.loads(out)
    assert hits[0]["source"].endswith("garden.pdf") and hits[0]["page"] == 2
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)

    code, out, err = _run(capsys, "ask", query, *rerank)
    assert code == 0, err
    assert json.loads(out)["citations"][0]["page"] == 2

    code, _, err = _run(capsys, "search", query, "--store", str(store), "--reranker", "no/such-model-x")
    assert code == 1 and "no/such-model-x" in err


def test_cli_gpu_profile_without_the_weights_fails_clearly_and_writes_nothing(
    tmp_path, corpus, capsys, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    store = tmp_path / "store"
    code, _, err = _run(
        capsys, "index", str(corpus["garden"]), "--store", str(store), "--profile", "gpu", "-q"
    )
    assert code == 1
    assert "profile 'gpu'" in err and "llama-nemotron-embed-vl-1b-v2" in err
    assert "Traceback" not in err
    code, out, _ = _run(capsys, "sources", "--store", str(store), "--json")
    assert code != 0 or json.loads(out) == []

"""The CLI's contract forms, run in-process (and once through the installed entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pagesight.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def indexed(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(corpus["garden"].parent), "--store", str(store), "-q")
    assert code == 0, err
    return store


def test_index_reports_profile_and_summary_then_skips_unchanged(tmp_path, corpus, capsys):
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(corpus["garden"].parent), "--store", str(store), "-q")
    assert code == 0
    assert "offline" in err and "2 source(s) indexed (5 pages)" in err
    code, _, err = run(capsys, "index", str(corpus["garden"]), "--store", str(store), "-q")
    assert code == 0 and "unchanged" in err and "0 source(s) indexed" in err


def test_index_with_a_bad_source_exits_nonzero_and_keeps_the_good_ones(tmp_path, corpus, capsys):
    bad = tmp_path / "error-page.pdf"
    bad.write_text("<!doctype html><title>404</title>Not found")
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(corpus["garden"]), str(bad), "--store", str(store), "-q")
    assert code == 1
    assert f"FAILED {bad}" in err and "PDF" in err
    code, out, _ = run(capsys, "sources", "--store", str(store), "--json")
    assert code == 0
    assert json.loads(out) == [{"source": str(corpus["garden"]), "pages": 2}]


def test_search_json_contract(indexed, corpus, capsys):
    code, out, _ = run(
        capsys, "search", "static IP address configuration", "--store", str(indexed), "-k", "3", "--json"
    )
    assert code == 0
    hits = json.loads(out)
    assert len(hits) == 3
    assert {"source", "page", "score", "text"} <= set(hits[0])
    assert (hits[0]["source"], hits[0]["page"]) == (str(corpus["network"]), 1)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_ask_cites_the_answering_page(indexed, capsys):
    code, out, _ = run(
        capsys, "ask", "Why should tomato plants be staked?", "--store", str(indexed), "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert "[garden.pdf p.1]" in result["answer"].splitlines()[0]
    assert result["citations"][0]["page"] == 1


def test_ask_prints_the_answer_then_its_sources_with_scores(indexed, capsys):
    code, out, _ = run(capsys, "ask", "Why should tomato plants be staked?", "--store", str(indexed))
    assert code == 0
    answer_part, sources = out.split("\nSources:\n")
    assert "[garden.pdf p.1]" in answer_part
    first = sources.splitlines()[0]
    assert first.strip().startswith(f"{indexed.parent / 'docs' / 'garden.pdf'} p.1  (score ")
    assert first.rstrip().endswith(".png")


def test_ask_refuses_an_unknown_generator_as_a_usage_error(indexed, capsys):
    code, _, err = run(capsys, "ask", "tomatoes", "--store", str(indexed), "--generator", "gpt-4")
    assert code == 2
    assert "unknown generator 'gpt-4'" in err and "ollama:<model>" in err
    code, _, err = run(capsys, "ask", "tomatoes", "--store", str(indexed), "--mode", "bm25")
    assert code == 2 and "needs the store's embedder" in err


def test_eval_json_has_the_four_metrics(indexed, corpus, tmp_path, capsys):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps(q)
            for q in [
                {"qid": "1", "query": "turning a compost heap", "relevant": ["garden.pdf#2"], "note": "x"},
                {"qid": "2", "query": "nftables rule for ssh", "relevant": ["network.pdf#2"]},
            ]
        )
    )
    code, out, _ = run(capsys, "eval", "--store", str(indexed), "--queries", str(queries), "--json")
    assert code == 0
    metrics = json.loads(out)
    assert set(metrics) == {"nDCG@5", "Recall@5", "Recall@10", "MRR@10"}
    assert metrics["Recall@10"] == 1.0 and metrics["MRR@10"] == 1.0
    code, out, _ = run(capsys, "eval", "--store", str(indexed), "--queries", str(queries), "--compare")
    assert code == 0 and all(m in out for m in ("dense", "bm25", "hybrid"))


def test_mismatched_embedder_is_refused_naming_both(indexed, corpus, capsys):
    code, _, err = run(
        capsys, "index", str(corpus["garden"]), "--store", str(indexed), "--dimensions", "64", "--force", "-q"
    )
    assert code == 1
    assert "384" in err and "64" in err


def test_missing_store_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "search", "x", "--store", str(tmp_path / "none"))
    assert code == 2 and "pagesight index" in err


def test_delete_removes_a_source(indexed, corpus, capsys):
    assert run(capsys, "delete", str(corpus["garden"]), "--store", str(indexed))[0] == 0
    _, out, _ = run(capsys, "sources", "--store", str(indexed), "--json")
    assert [s["source"] for s in json.loads(out)] == [str(corpus["network"])]


def test_installed_entry_point_runs(tmp_path):
    exe = shutil.which("pagesight", path=str(Path(sys.executable).parent))
    assert exe, "the pagesight console script is not installed"
    proc = subprocess.run(
        [exe, "sources", "--store", str(tmp_path / "nothing")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no store at" in proc.stderr


def test_late_interaction_profile_indexes_searches_asks_and_evaluates(tmp_path, corpus, capsys):
    store = str(tmp_path / "late")
    code, _, err = run(
        capsys,
        "index",
        str(corpus["garden"].parent),
        "--store",
        store,
        "--profile",
        "offline-late",
        "--storage",
        "int8",
        "-q",
    )
    assert code == 0, err
    assert "offline-late" in err and "2 source(s) indexed (5 pages)" in err
    code, out, _ = run(capsys, "sources", "--store", store)
    assert "late-interaction" in out
    for extra in ([], ["--exhaustive"], ["--mode", "dense"]):
        code, out, _ = run(
            capsys, "search", "nftables rule to allow ssh", "--store", store, "-k", "2", "--json", *extra
        )
        hits = json.loads(out)
        assert (Path(hits[0]["source"]).name, hits[0]["page"]) == ("network.pdf", 2), extra
    code, out, _ = run(
        capsys, "ask", "How often should the compost heap be turned?", "--store", store, "--json"
    )
    assert "[garden.pdf p.2]" in json.loads(out)["answer"].splitlines()[0]
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"qid": "1", "query": "stake tomato plants", "relevant": ["garden.pdf#1"]}))
    code, out, _ = run(capsys, "eval", "--store", store, "--queries", str(queries), "--json")
    assert code == 0 and json.loads(out)["MRR@10"] == 1.0
    # a dense model cannot write into the late-interaction store
    code, _, err = run(capsys, "index", str(corpus["garden"]), "--store", store, "--force", "-q")
    assert code == 1 and "late-interaction" in err


def test_late_interaction_options_are_refused_for_dense_models(tmp_path, corpus, capsys):
    code, _, err = run(
        capsys, "index", str(corpus["garden"]), "--store", str(tmp_path / "s"), "--pool-factor", "2"
    )
    assert code == 2 and "late-interaction" in err


def test_index_limits_refuse_long_pdfs_and_cut_long_text(tmp_path, corpus, capsys):
    from pagesight.retrieval.store import PageStore

    store = tmp_path / "store"
    folder = str(corpus["garden"].parent)
    code, _, err = run(capsys, "index", folder, "--store", str(store), "-q", "--max-pages", "2")
    assert code == 1  # network.pdf has 3 pages
    assert f"FAILED {corpus['network']}" in err and "max_pages=3" in err
    # --force: garden.pdf is unchanged, and without it would keep its long text.
    limits = ["--max-pages", "3", "--max-chars-per-page", "20", "--force"]
    code, _, err = run(capsys, "index", folder, "--store", str(store), "-q", *limits)
    assert code == 0, err
    assert "cut" in err and str(corpus["network"]) in err
    with PageStore(store) as opened:
        texts = [h.text for h in opened.pages()]
    assert len(texts) == 5 and max(len(t) for t in texts) <= 20


@pytest.mark.parametrize("flag", ["--max-pages", "--max-pixels", "--max-chars-per-page", "--max-bytes"])
def test_index_limit_below_one_is_a_usage_error(tmp_path, corpus, capsys, flag):
    code, _, err = run(capsys, "index", str(corpus["garden"]), "--store", str(tmp_path / "s"), flag, "0")
    assert code == 2 and f"{flag} must be at least 1" in err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("*.png"))


@pytest.mark.enable_socket
def test_index_refuses_loopback_urls_unless_allowed(tmp_path, corpus, capsys, monkeypatch):
    from tests.http_server import LoopbackHTTPServer, Route

    monkeypatch.delenv("PAGESIGHT_ALLOW_PRIVATE_URLS", raising=False)
    store = tmp_path / "store"
    pdf = corpus["garden"].read_bytes()
    with LoopbackHTTPServer({"/garden.pdf": Route(pdf, content_type="application/pdf")}) as server:
        url = server.url("/garden.pdf")
        code, _, err = run(capsys, "index", url, "--store", str(store), "-q")
        assert code == 1 and f"FAILED {url}" in err and "--allow-private-urls" in err
        assert server.requests == []  # refused before connecting
        code, _, err = run(capsys, "index", url, "--store", str(store), "-q", "--allow-private-urls")
        assert code == 0, err
        assert len(server.requests) == 1
    code, out, _ = run(capsys, "sources", "--store", str(store), "--json")
    assert json.loads(out) == [{"source": url, "pages": 2}]

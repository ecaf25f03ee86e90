"""Every example script runs in its offline form (so the examples never rot).

Scripts that need Ollama run against the Ollama-protocol double on loopback; the example PDFs are
indexed once into a shared store that later scripts find unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ollama_double import ChatModel, OllamaDouble
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One offline store of examples/ shared by the scripts (the first one indexes, the rest reuse)."""
    return tmp_path_factory.mktemp("examples") / "store"


@pytest.mark.slow
def test_quickstart_indexes_the_examples_and_cites_the_answering_page(example_store):
    proc = _run("quickstart.py", "Why is sqrt(2) squared not exactly 2 in R?", "--store", str(example_store))
    assert proc.returncode == 0, proc.stderr
    assert "2 source(s) indexed (125 pages)" in proc.stdout
    answer_lines = [line for line in proc.stdout.splitlines() if line.startswith("“")]
    assert answer_lines and answer_lines[0].endswith("[R-FAQ.pdf p.41 (printed 37)]"), proc.stdout


def _ranked(section: str) -> list[tuple[float, str]]:
    return [(float(s), p) for s, p in re.findall(r"^\s+(-?[\d.]+)\s+(\S+ p\.\d+)$", section, re.MULTILINE)]


@pytest.mark.slow
def test_rerank_example_reorders_the_candidates_by_reranker_score(example_store):
    proc = _run("rerank.py", "--store", str(example_store))
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split("reranked by nanoranker:")
    retrieved, reranked = _ranked(before), _ranked(after)
    assert len(retrieved) == len(reranked) == 5
    assert retrieved[0][1] == "debian-faq.en.pdf p.29"  # the page that answers, first by hybrid search
    scores = [s for s, _ in reranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.mark.slow
def test_late_interaction_example_ranks_the_answering_page_first(tmp_path):
    proc = _run("late_interaction.py", "--store", str(tmp_path / "late"))
    assert proc.returncode == 0, proc.stderr
    exact, fused = proc.stdout.split("MaxSim fused with BM25:")
    assert _ranked(exact)[0][1] == _ranked(fused)[0][1] == "R-FAQ.pdf p.41"


@pytest.mark.slow
def test_ollama_example_streams_a_cited_answer_from_page_images(example_store):
    with OllamaDouble({}, chat_models={"gemma3:4b": ChatModel(vision=True)}) as server:
        proc = _run("ollama_answer.py", "--store", str(example_store), env={"OLLAMA_HOST": server.url})
        assert proc.returncode == 0, proc.stderr
        assert "gemma3:4b reads the page images + text" in proc.stdout
        assert re.search(r"cited: debian-faq\.en\.pdf p\.\d+ \(score", proc.stdout), proc.stdout
        assert len(server.chat_images) == 1 and len(server.chat_images[0]) == 2  # max_images=2
    down = _run("ollama_answer.py", "--store", str(example_store), env={"OLLAMA_HOST": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "ollama serve" in down.stderr


@pytest.mark.parametrize(
    ("script", "options"),
    [("langchain_chain.py", ["--images", "--reranker", "nanoranker"]), ("llamaindex_engine.py", [])],
)
@pytest.mark.slow
def test_chain_examples_answer_with_a_citation_against_an_ollama_double(tmp_path, script, options):
    pdf = write_pdf(tmp_path / "network.pdf", NETWORK)
    garden = write_pdf(tmp_path / "garden.pdf", GARDEN)
    with OllamaDouble({}, chat_models={"gemma3:4b": ChatModel(vision=True)}) as server:
        proc = _run(
            script,
            "which firewall rules allow ssh on port 22",
            "--model",
            "gemma3:4b",
            "--sources",
            str(pdf),
            str(garden),
            *options,
            env={"OLLAMA_HOST": server.url},
        )
        assert proc.returncode == 0, proc.stderr
        assert "[network.pdf p.2]" in proc.stdout
        assert "cited: network.pdf p.2" in proc.stdout
        assert server.chat_images and len(server.chat_images[-1]) >= 1  # the vision model saw page images


@pytest.mark.slow
def test_chain_example_without_a_server_says_how_to_start_one(tmp_path):
    pdf = write_pdf(tmp_path / "network.pdf", NETWORK)
    proc = _run("langchain_chain.py", "--sources", str(pdf), env={"OLLAMA_HOST": "http://127.0.0.1:9"})
    assert proc.returncode == 1 and "ollama serve" in proc.stderr


@pytest.mark.slow
def test_web_app_example_serves_its_page(example_store):
    proc = _run("web_app.py", "--store", str(example_store), "--check")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"http://127\.0\.0\.1:\d+/? answered 200", proc.stdout), proc.stdout

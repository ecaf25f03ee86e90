"""The real evaluation set: fused retrieval must beat dense-only and BM25-only (README's claim)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pagesight.cli import main

EVAL = Path(__file__).resolve().parents[2] / "eval"


@pytest.mark.slow
def test_fusion_beats_dense_and_bm25_on_the_eval_set(tmp_path, capsys):
    store = str(tmp_path / "store")
    assert main(["index", str(EVAL / "corpus"), "--store", store, "-q", "--no-images"]) == 0
    capsys.readouterr()
    assert (
        main(["eval", "--store", store, "--queries", str(EVAL / "queries.jsonl"), "--compare", "--json"]) == 0
    )
    table = json.loads(capsys.readouterr().out)
    for metric in ("nDCG@5", "Recall@10", "MRR@10"):
        assert table["hybrid"][metric] > table["dense"][metric], (metric, table)
        assert table["hybrid"][metric] > table["bm25"][metric], (metric, table)
    assert table["hybrid"]["nDCG@5"] > 0.85, table

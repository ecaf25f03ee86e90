"""Retrieval metrics against hand-computed answers, and the query-file format."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pagesight.errors import ConfigurationError
from pagesight.evaluation import (
    Query,
    evaluate,
    evaluate_per_query,
    load_queries,
    mrr_at_k,
    ndcg_at_k,
    page_key,
    recall_at_k,
)

EVAL_DIR = Path(__file__).resolve().parent.parent / "eval"

# -- metrics --------------------------------------------------------------------------------------


def test_ndcg_known_answers() -> None:
    # one relevant at rank 1: perfect
    assert ndcg_at_k(["a", "x", "y"], {"a"}, 5) == pytest.approx(1.0)
    # one relevant at rank 3: (1/log2(4)) / 1 = 0.5
    assert ndcg_at_k(["x", "y", "a"], {"a"}, 5) == pytest.approx(0.5)
    # two relevant, found at ranks 2 and 4: (1/log2 3 + 1/log2 5) / (1 + 1/log2 3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "y", "b"], {"a", "b"}, 5) == pytest.approx(expected)
    assert expected == pytest.approx(0.6509, abs=1e-4)
    # the ideal DCG is cut at k: 3 relevant, k=2, both top slots relevant -> 1.0
    assert ndcg_at_k(["a", "b", "x"], {"a", "b", "c"}, 2) == pytest.approx(1.0)
    # a relevant page below k does not count
    assert ndcg_at_k(["x", "y", "a"], {"a"}, 2) == 0.0


def test_recall_known_answers() -> None:
    assert recall_at_k(["a", "x", "b"], {"a", "b"}, 5) == 1.0
    assert recall_at_k(["a", "x", "b"], {"a", "b"}, 2) == 0.5
    assert recall_at_k(["x", "y"], {"a", "b", "c"}, 10) == 0.0
    assert recall_at_k(["a", "b", "c"], {"a", "b", "c"}, 2) == pytest.approx(2 / 3)


def test_mrr_known_answers() -> None:
    assert mrr_at_k(["a", "b"], {"a"}, 10) == 1.0
    assert mrr_at_k(["x", "y", "a", "b"], {"a", "b"}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a"}, 2) == 0.0


def test_metrics_count_a_repeated_page_once() -> None:
    ranked = ["a", "a", "a", "b"]
    assert recall_at_k(ranked, {"a", "b"}, 2) == 1.0  # distinct pages: a, b
    assert ndcg_at_k(ranked, {"a"}, 5) == pytest.approx(1.0)
    assert mrr_at_k(["x", "x", "a"], {"a"}, 2) == pytest.approx(0.5)


def test_metrics_edge_cases() -> None:
    assert ndcg_at_k([], {"a"}, 5) == 0.0
    assert recall_at_k(["a"], set(), 5) == 0.0
    assert ndcg_at_k(["a"], set(), 5) == 0.0
    assert mrr_at_k([], {"a"}, 5) == 0.0
    for metric in (ndcg_at_k, recall_at_k, mrr_at_k):
        with pytest.raises(ConfigurationError, match="`k`"):
            metric(["a"], {"a"}, 0)


def test_evaluate_means_over_queries() -> None:
    queries = [
        Query("q1", "first", frozenset({"a.pdf#1"})),
        Query("q2", "second", frozenset({"b.pdf#2", "b.pdf#3"})),
    ]
    run = {
        "q1": ["x#1", "a.pdf#1"],  # relevant at rank 2
        "q2": ["b.pdf#3"] + [f"y#{i}" for i in range(8)] + ["b.pdf#2"],  # ranks 1 and 10
        "other": ["ignored"],
    }
    result = evaluate(run, queries)
    assert list(result) == ["nDCG@5", "Recall@5", "Recall@10", "MRR@10"]
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q2 = 1 / (1 + 1 / math.log2(3))
    assert result["nDCG@5"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2)
    assert result["Recall@5"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["Recall@10"] == pytest.approx((1.0 + 1.0) / 2)
    assert result["MRR@10"] == pytest.approx((0.5 + 1.0) / 2)
    per_query = evaluate_per_query(run, queries)
    assert per_query["q1"]["MRR@10"] == 0.5
    assert per_query["q2"]["Recall@5"] == 0.5


def test_evaluate_scores_a_missing_query_zero() -> None:
    queries = [Query("q1", "x", frozenset({"a#1"})), Query("q2", "y", frozenset({"a#2"}))]
    result = evaluate({"q1": ["a#1"]}, queries)
    assert result["MRR@10"] == 0.5
    with pytest.raises(ConfigurationError, match="empty"):
        evaluate({}, [])


def test_page_key_uses_the_file_name() -> None:
    assert page_key("/data/docs/fhs-3.0.pdf", 19) == "fhs-3.0.pdf#19"
    assert page_key(Path("a") / "b.pdf", 1) == "b.pdf#1"


# -- load_queries ---------------------------------------------------------------------------------


def test_load_queries_reads_jsonl_and_ignores_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"qid": "q1", "query": "where do I mount usb sticks", "relevant": ["fhs-3.0.pdf#19"], "note": "x"}\n'
        "\n"
        '{"qid": 7, "query": "second", "relevant": ["a.pdf#1", "a.pdf#2"]}\n',
        encoding="utf-8",
    )
    queries = load_queries(path)
    assert queries == [
        Query("q1", "where do I mount usb sticks", frozenset({"fhs-3.0.pdf#19"})),
        Query("7", "second", frozenset({"a.pdf#1", "a.pdf#2"})),
    ]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "JSON object"),
        ('{"query": "q", "relevant": ["a#1"]}', "qid"),
        ('{"qid": "q1", "query": "", "relevant": ["a#1"]}', "query"),
        ('{"qid": "q1", "query": "q", "relevant": []}', "relevant"),
        ('{"qid": "q1", "query": "q", "relevant": "a#1"}', "relevant"),
        ('{"qid": "q0", "query": "duplicate", "relevant": ["a#1"]}', "twice"),
    ],
)
def test_load_queries_names_file_and_line_of_a_bad_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text(
        '{"qid": "q0", "query": "fine", "relevant": ["a#1"]}\n\n' + bad_line + "\n", encoding="utf-8"
    )
    with pytest.raises(ConfigurationError, match=message) as info:
        load_queries(path)
    assert "queries.jsonl, line 3" in str(info.value)


def test_load_queries_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_queries(tmp_path / "absent.jsonl")


# -- the shipped evaluation set -------------------------------------------------------------------


def test_shipped_eval_set_is_consistent() -> None:
    pymupdf = pytest.importorskip("pymupdf")
    queries = load_queries(EVAL_DIR / "queries.jsonl")
    assert len(queries) >= 50
    pages: dict[str, int] = {}
    for pdf in sorted((EVAL_DIR / "corpus").glob("*.pdf")):
        with pymupdf.open(pdf) as doc:
            pages[pdf.name] = doc.page_count
    assert sum(pages.values()) >= 150
    for q in queries:
        assert 1 <= len(q.relevant) <= 3, q.qid
        for key in q.relevant:
            name, _, page = key.rpartition("#")
            assert name in pages, (q.qid, key)
            assert 1 <= int(page) <= pages[name], (q.qid, key)

"""Retrieval metrics (binary relevance) and the query-file format of ``eval/``.

A query file is JSON Lines, one query per line::

    {"qid": "q001", "query": "where do I mount usb sticks", "relevant": ["fhs-3.0.pdf#19"]}

``relevant`` lists pages as ``"<file name>#<1-based page>"``; other keys are ignored. A run maps each
qid to the ranked page keys a retriever returned, best first. Use::

    from pagesight.evaluation import evaluate, load_queries

    queries = load_queries("eval/queries.jsonl")
    run = {q.qid: my_search(q.query) for q in queries}     # {"q001": ["fhs-3.0.pdf#19", ...], ...}
    evaluate(run, queries)
    # {"nDCG@5": 0.68, "Recall@5": 0.74, "Recall@10": 0.86, "MRR@10": 0.67}
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from pagesight._checks import check_int
from pagesight.errors import ConfigurationError
from pagesight.types import SourceInfo

__all__ = [
    "Metrics",
    "Query",
    "coverage_warning",
    "evaluate",
    "evaluate_per_query",
    "load_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "page_key",
    "recall_at_k",
]

logger = logging.getLogger(__name__)

Metrics = TypedDict("Metrics", {"nDCG@5": float, "Recall@5": float, "Recall@10": float, "MRR@10": float})
"""The four scores :func:`evaluate` reports, each a mean over queries, in [0, 1]."""


@dataclass(frozen=True)
class Query:
    """One evaluation query.

    Attributes:
        qid: unique id within its file.
        query: the question as a user would type it.
        relevant: the pages that answer it, as ``"<file name>#<page>"`` keys.
    """

    qid: str
    query: str
    relevant: frozenset[str]


def page_key(source: str | os.PathLike[str], page: int) -> str:
    """Return the key used in query files: the file's name (no folders) ``#`` the 1-based page."""
    return f"{Path(source).name}#{page}"


def _check_k(k: int) -> None:
    check_int("k", k, least=1)


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids of ``ranked`` (a repeated id counts once, at its first place)."""
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def ndcg_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Normalized discounted cumulative gain at ``k`` with binary gains.

    ``DCG = sum(1 / log2(rank + 1))`` over relevant ids at ranks 1..k, divided by the DCG of an ideal
    ranking (all relevant ids first). ``0.0`` when ``relevant`` is empty.

    Example: ranked ``["x", "a"]``, relevant ``{"a", "b"}``, k=5 -> ``(1/log2 3) / (1 + 1/log2 3)`` = 0.387.
    """
    _check_k(k)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(_top_k(ranked, k)) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal


def recall_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Share of the relevant ids found among the first ``k``; ``0.0`` when ``relevant`` is empty."""
    _check_k(k)
    if not relevant:
        return 0.0
    return sum(1 for d in _top_k(ranked, k) if d in relevant) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float:
    """Reciprocal rank of the first relevant id within the first ``k`` (``0.0`` if none is there)."""
    _check_k(k)
    for i, d in enumerate(_top_k(ranked, k)):
        if d in relevant:
            return 1.0 / (i + 1)
    return 0.0


def load_queries(path: str | os.PathLike[str]) -> list[Query]:
    """Read a JSON Lines query file (blank lines are skipped).

    Raises:
        ConfigurationError: the file cannot be read, or a line is not a JSON object with a string
            ``qid`` (unique), a non-empty string ``query`` and a non-empty list of string
            ``relevant``; the message names the file and the 1-based line number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{path}: cannot read the query file ({e})") from e
    queries: list[Query] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigurationError(f"{where}: not valid JSON ({e.msg})") from e
        if not isinstance(record, dict):
            raise ConfigurationError(f"{where}: expected a JSON object, got {type(record).__name__}")
        qid, text, relevant = record.get("qid"), record.get("query"), record.get("relevant")
        if isinstance(qid, int) and not isinstance(qid, bool):
            qid = str(qid)
        if not isinstance(qid, str) or not qid:
            raise ConfigurationError(f"{where}: `qid` must be a non-empty string, got {qid!r}")
        if qid in seen:
            raise ConfigurationError(f"{where}: `qid` {qid!r} appears twice")
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError(f"{where}: `query` must be a non-empty string, got {text!r}")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(r, str) and r for r in relevant)
        ):
            raise ConfigurationError(
                f'{where}: `relevant` must be a non-empty list of "<file name>#<page>" strings, '
                f"got {relevant!r}"
            )
        seen.add(qid)
        queries.append(Query(qid=qid, query=text, relevant=frozenset(relevant)))
    logger.debug("loaded %d queries from %s", len(queries), path)
    return queries


def _key_parts(key: str) -> tuple[str, int | None]:
    name, _, page = key.rpartition("#")
    return (name, int(page)) if name and page.isdigit() else (key, None)


def _names(names: Iterable[str], most: int = 6) -> str:
    shown = sorted(set(names))
    if not shown:
        return "nothing"
    return ", ".join(shown[:most]) + (f" and {len(shown) - most} more" if len(shown) > most else "")


def coverage_warning(
    queries: Sequence[Query], indexed: Iterable[SourceInfo | tuple[str, int]], *, store: str = ""
) -> str | None:
    """Say when relevant pages of ``queries`` are not in the store (their scores can only be 0).

    Args:
        queries: the queries (:func:`load_queries`).
        indexed: the indexed sources: ``Index.sources()`` (:class:`~pagesight.types.SourceInfo`)
            or ``(source, pages)`` pairs; sources are matched by file name, as query files name
            them, and hold pages ``1..pages``.
        store: the store's location, for the message.

    Returns:
        ``None`` when every relevant page is indexed; else one line: none of them ("the queries
        expect X, the store holds Y"), or how many are missing, by file.

    Example:
        >>> q = [Query("q1", "where is fstab", frozenset({"fhs-3.0.pdf#19"}))]
        >>> coverage_warning(q, [("/docs/fhs-3.0.pdf", 50)]) is None
        True
        >>> coverage_warning(q, [("/docs/R-FAQ.pdf", 52)])  # doctest: +ELLIPSIS
        'none of the 1 relevant pages ... the queries expect fhs-3.0.pdf, the store holds R-FAQ.pdf; ...'
    """
    pages: dict[str, int] = {}
    for item in indexed:
        source, count = (item.source, item.pages) if isinstance(item, SourceInfo) else item
        name = page_key(str(source), 1).rsplit("#", 1)[0]
        pages[name] = max(pages.get(name, 0), int(count))
    relevant = sorted({key for q in queries for key in q.relevant})
    missing: dict[str, int] = {}
    for key in relevant:
        name, page = _key_parts(key)
        if page is None or not 1 <= page <= pages.get(name, 0):
            missing[name] = missing.get(name, 0) + 1
    lost = sum(missing.values())
    if not lost:
        return None
    where = f" in store {store}" if store else ""
    if lost == len(relevant):
        return (
            f"none of the {len(relevant)} relevant pages the queries name are indexed{where}: the queries "
            f"expect {_names(missing)}, the store holds {_names(pages)}; every score will be 0. Index "
            "the expected files into this store, or evaluate the store the queries were written for"
        )
    by_file = ", ".join(f"{name} ({n})" for name, n in sorted(missing.items()))
    return (
        f"{lost} of the {len(relevant)} relevant pages the queries name are not indexed{where} "
        f"({by_file}); they count as misses, so the scores are lower than retrieval alone explains"
    )


def evaluate_per_query(run: Mapping[str, Sequence[str]], queries: Sequence[Query]) -> dict[str, Metrics]:
    """Score each query; a query missing from ``run`` scores 0 everywhere (and is logged)."""
    missing = [q.qid for q in queries if q.qid not in run]
    if missing:
        logger.warning("%d queries have no results in the run (scored 0): %s", len(missing), missing[:5])
    scores: dict[str, Metrics] = {}
    for q in queries:
        ranked = run.get(q.qid, [])
        scores[q.qid] = {
            "nDCG@5": ndcg_at_k(ranked, q.relevant, 5),
            "Recall@5": recall_at_k(ranked, q.relevant, 5),
            "Recall@10": recall_at_k(ranked, q.relevant, 10),
            "MRR@10": mrr_at_k(ranked, q.relevant, 10),
        }
    return scores


def evaluate(run: Mapping[str, Sequence[str]], queries: Sequence[Query]) -> Metrics:
    """Mean nDCG@5, Recall@5, Recall@10 and MRR@10 of ``run`` over ``queries``.

    Args:
        run: qid -> ranked page keys (``"<file name>#<page>"``), best first. Extra qids are ignored.
        queries: the queries with their relevant pages (:func:`load_queries`).

    Raises:
        ConfigurationError: ``queries`` is empty.
    """
    if not queries:
        raise ConfigurationError("`queries` is empty; nothing to evaluate")
    per_query = evaluate_per_query(run, queries).values()
    n = len(queries)
    return {
        "nDCG@5": sum(s["nDCG@5"] for s in per_query) / n,
        "Recall@5": sum(s["Recall@5"] for s in per_query) / n,
        "Recall@10": sum(s["Recall@10"] for s in per_query) / n,
        "MRR@10": sum(s["MRR@10"] for s in per_query) / n,
    }

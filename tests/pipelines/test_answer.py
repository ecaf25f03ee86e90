from __future__ import annotations

from pagesight.pipelines.answer import ExtractiveGenerator, answer, parse_citations
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore


def test_parse_citations_keeps_order_and_dedups():
    text = "A [a.pdf p.2] b [dir/x y.pdf p.10] c [a.pdf p.2] [not a cite]"
    assert parse_citations(text) == [("a.pdf", 2), ("dir/x y.pdf", 10)]


def test_parse_citations_reads_file_names_with_brackets():
    text = "Stake them [report [final].pdf p.3]. See [x] and [b.pdf p.1; c [v2].pdf p.4]."
    assert parse_citations(text) == [("report [final].pdf", 3), ("b.pdf", 1), ("c [v2].pdf", 4)]


def test_a_query_with_lone_surrogates_is_searched_not_raised(tmp_path, corpus, encoder):
    """Python callers (not only the CLI) may pass os.fsdecode'd bytes that are not UTF-8."""
    store = PageStore(tmp_path / "store")
    ingest([corpus["garden"]], store, encoder, show_progress=False)
    searcher = PageSearcher(store, encoder)
    hits = searcher.search("compost pile \udcff\udcfe", k=2)
    assert hits and hits[0].source == str(corpus["garden"])
    assert PageSearcher(store, encoder, mode="bm25").search("compost \ud800", k=1)[0].page == 2


def test_extractive_answer_quotes_the_right_page(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    ingest([corpus["garden"].parent], store, encoder, show_progress=False)
    searcher = PageSearcher(store, encoder)
    result = answer("How often should I turn my compost pile?", searcher, ExtractiveGenerator(encoder))
    first_line = result.text.splitlines()[0]
    assert "two weeks" in first_line and first_line.endswith("[garden.pdf p.2]")
    assert (result.citations[0].source, result.citations[0].page) == (str(corpus["garden"]), 2)
    assert result.unmatched_citations == []
    assert result.to_dict()["citations"][0]["page"] == 2


class _Inventing:
    def generate(self, question, pages):
        return f"See [{pages[0].source.rsplit('/', 1)[-1]} p.{pages[0].page}] and [made-up.pdf p.9]."


def test_citations_not_among_retrieved_pages_are_flagged(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    ingest([corpus["garden"]], store, encoder, show_progress=False)
    result = answer("tomatoes", PageSearcher(store, encoder), _Inventing(), k=2)
    assert result.unmatched_citations == ["[made-up.pdf p.9]"]
    assert len(result.citations) == 1

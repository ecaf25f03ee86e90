"""The ``source=`` filter takes any spelling of a local path (issue 15 item 7 / issue 16 leftover).

Ingest stores a local file under its absolute path; ``Index.search(source=...)``, ``PageRetriever``
and ``PageNodeRetriever`` must find its pages whether the caller writes ``docs/x.pdf``,
``./docs/x.pdf`` or the absolute path, and a store an older pagesight wrote (the path as typed)
must still match every spelling. Real MiniLM, embedded Chroma.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pagesight import Index
from pagesight.documents import load_pdf
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.pipelines.conftest import COMPOST, FIREWALL, GARDEN, NETWORK, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

SPELLINGS = ("docs/x.pdf", "./docs/x.pdf", "docs//x.pdf", "docs/../docs/x.pdf")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current folder, with ``docs/x.pdf`` (garden) and ``docs/y.pdf`` (network)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    write_pdf(tmp_path / "docs" / "x.pdf", GARDEN)
    write_pdf(tmp_path / "docs" / "y.pdf", NETWORK)
    return tmp_path


def _sources(hits: list[Any]) -> set[str]:
    return {h.source for h in hits}


def test_every_spelling_filters_a_store_of_absolute_names(folder: Path, encoder: Any) -> None:
    absolute = str(folder / "docs" / "x.pdf")
    store = PageStore(folder / "store")
    assert ingest(["./docs/x.pdf", "docs/y.pdf"], store, encoder, show_progress=False).ok
    assert [s.source for s in store.sources()] == [absolute, str(folder / "docs" / "y.pdf")]
    with Index(store, encoder=encoder) as index:
        for mode in ("hybrid", "dense", "bm25"):
            for spelling in (*SPELLINGS, absolute):
                hits = index.search(COMPOST, k=5, mode=mode, source=spelling)
                assert _sources(hits) == {absolute}, (mode, spelling)
                # BM25 finds only the page with the question's words
                assert len(hits) == (1 if mode == "bm25" else 2), (mode, spelling)
        assert index.search(COMPOST, k=5, source="docs/missing.pdf") == []

        from pagesight.integrations import PageNodeRetriever, PageRetriever

        docs = PageRetriever(index=index, k=5, source="docs/x.pdf").invoke(COMPOST)
        assert {d.metadata["source"] for d in docs} == {absolute} and len(docs) == 2
        docs = PageRetriever(index=index, k=5).invoke(COMPOST, source="./docs/x.pdf", mode="bm25")
        assert {d.metadata["source"] for d in docs} == {absolute}
        nodes = PageNodeRetriever(index, similarity_top_k=5, source="./docs/x.pdf").retrieve(COMPOST)
        assert {n.node.metadata["source"] for n in nodes} == {absolute} and len(nodes) == 2
    store.close()


def test_an_old_store_of_typed_names_matches_every_spelling(folder: Path, encoder: Any) -> None:
    store = PageStore(folder / "store")
    for name in ("docs/x.pdf", "./docs/y.pdf"):  # as an older pagesight stored them: as typed
        pages = list(load_pdf(name, source=name, image_dir=folder / "staging", ocr="never"))
        store.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
    with Index(store, encoder=encoder) as index:
        for spelling in (*SPELLINGS, str(folder / "docs" / "x.pdf")):
            hits = index.search(COMPOST, k=5, source=spelling)
            assert _sources(hits) == {"docs/x.pdf"} and len(hits) == 2, spelling
        for spelling in ("docs/y.pdf", str(folder / "docs" / "y.pdf")):
            assert _sources(index.search(FIREWALL, k=5, mode="bm25", source=spelling)) == {"./docs/y.pdf"}
    store.close()

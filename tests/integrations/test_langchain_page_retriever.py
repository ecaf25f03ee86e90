"""PageRetriever: LangChain's standard retriever suite, and the same pages as Index.search for every mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chromadb")

from langchain_core.documents import Document  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from pagesight import Index  # noqa: E402
from pagesight.errors import ConfigurationError, ImageQueryError  # noqa: E402
from pagesight.integrations import PageRetriever, VLReranker  # noqa: E402
from pagesight.integrations.langchain import PageRetriever as FromPackage  # noqa: E402
from tests.integrations.page_index import COMPOST, FIREWALL  # noqa: E402


@pytest.fixture(scope="module")
def docs(page_docs: dict[str, Path]) -> dict[str, Path]:
    return page_docs


@pytest.fixture(scope="module")
def location(page_store: Path) -> Path:
    return page_store


@pytest.fixture(scope="module")
def index(location: Path) -> Iterator[Index]:
    with Index.open(location) as opened:
        yield opened


class TestPageRetrieverStandard(RetrieversIntegrationTests):
    index: Index

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _index(cls, index: Index) -> None:
        cls.index = index

    @property
    def retriever_constructor(self) -> type[PageRetriever]:
        return PageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"index": self.index}

    @property
    def retriever_query_example(self) -> str:
        return FIREWALL


def _pages(docs: list[Document]) -> list[tuple[str, int, float]]:
    return [(Path(d.metadata["source"]).name, d.metadata["page"], d.metadata["score"]) for d in docs]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_each_mode_returns_what_index_search_returns(index: Index, mode: str) -> None:
    retriever = index.as_langchain_retriever(k=3, mode=mode)
    assert isinstance(retriever, PageRetriever) and FromPackage is PageRetriever
    docs = retriever.invoke(FIREWALL)
    hits = index.search(FIREWALL, k=3, mode=mode)  # type: ignore[arg-type]
    assert _pages(docs) == [(Path(h.source).name, h.page, h.score) for h in hits]
    assert _pages(docs)[0][:2] == ("network.pdf", 2)
    for doc, hit in zip(docs, hits, strict=True):
        assert doc.page_content == hit.text and doc.id == hit.id == doc.metadata["id"]
        assert set(doc.metadata) >= {"source", "page", "image", "score", "id", "text_source"}
        assert Path(doc.metadata["image"]).is_file()  # rendered page images, inside the store


def test_per_call_options_and_the_source_filter(index: Index, docs: dict[str, Path]) -> None:
    retriever = PageRetriever(index=index, k=2)
    assert len(retriever.invoke(COMPOST)) == 2
    assert len(retriever.invoke(COMPOST, k=5)) == 5 and retriever.k == 2  # a per-call k does not stick
    garden = str(docs["garden"])
    only = PageRetriever(index=index, k=5, source=garden).invoke(FIREWALL)
    assert {d.metadata["source"] for d in only} == {garden} and len(only) == 2
    bm25 = retriever.invoke(COMPOST, mode="bm25", source=str(docs["network"]))
    assert bm25 == []  # no word of it on network.pdf's pages
    assert [d.metadata["page"] for d in retriever.invoke(COMPOST, mode="bm25", source=garden)] == [2]
    assert PageRetriever(index=index, source="elsewhere.pdf").invoke(FIREWALL) == []


def test_a_store_folder_and_a_store_object_search_like_the_index(index: Index, location: Path) -> None:
    want = _pages(PageRetriever(index=index, k=3).invoke(FIREWALL))
    assert _pages(PageRetriever(store=str(location), k=3).invoke(FIREWALL)) == want
    assert _pages(PageRetriever(store=index.store, k=3).invoke(FIREWALL)) == want
    with_encoder = PageRetriever(store=index.store, encoder=index.encoder, k=3)
    assert _pages(with_encoder.invoke(FIREWALL)) == want
    assert with_encoder.query_encoder is index.encoder


@pytest.mark.filterwarnings("ignore:nanoranker is a text-only reranker")
def test_a_reranker_reorders_by_its_own_relevance(index: Index) -> None:
    by_name = PageRetriever(index=index, k=2, reranker="nanoranker", rerank_candidates=5).invoke(FIREWALL)
    want = index.search(FIREWALL, k=2, reranker="nanoranker", rerank_candidates=5)
    assert [(d.id, d.metadata["score"]) for d in by_name] == [(h.id, h.score) for h in want]
    assert all(0.0 <= d.metadata["score"] <= 1.0 for d in by_name)
    compressor = VLReranker(model="nanoranker")  # pagesight's LangChain reranker gives its model
    by_compressor = PageRetriever(index=index, k=2, reranker=compressor, rerank_candidates=5)
    assert [d.id for d in by_compressor.invoke(FIREWALL)] == [d.id for d in by_name]


async def test_async_and_batch(index: Index) -> None:
    retriever = PageRetriever(index=index, k=1)
    [best] = await retriever.ainvoke(FIREWALL)
    assert (Path(best.metadata["source"]).name, best.metadata["page"]) == ("network.pdf", 2)
    batch = await retriever.abatch([FIREWALL, COMPOST])
    assert [(Path(d[0].metadata["source"]).name, d[0].metadata["page"]) for d in batch] == [
        ("network.pdf", 2),
        ("garden.pdf", 2),
    ]


def test_bad_arguments_are_refused(index: Index, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of `index`"):
        PageRetriever()
    with pytest.raises(ValidationError, match="exactly one of `index`"):
        PageRetriever(index=index, store=index.store)
    with pytest.raises(ValidationError, match="no store at"):
        PageRetriever(store=str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="must be a pagesight Index"):
        PageRetriever(store=42)
    with pytest.raises(ValidationError):
        PageRetriever(index=index, k=0)
    with pytest.raises(ValidationError):
        PageRetriever(index=index, mode="fuzzy")
    with pytest.raises(ConfigurationError, match="`mode` must be one of"):
        PageRetriever(index=index).invoke(FIREWALL, mode="fuzzy")
    with pytest.raises(ConfigurationError, match="`reranker` must be"):
        PageRetriever(index=index, reranker=42).invoke(FIREWALL)
    with pytest.raises(ImageQueryError, match="embeds text only.*dense vision-language"):
        PageRetriever(index=index).invoke("", image=b"\x89PNG\r\n\x1a\n")

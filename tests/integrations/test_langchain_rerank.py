"""VLReranker: order, top_n, copies, images from a store, the retriever suite, real nanoranker."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import ConfigDict, ValidationError
from rerank_pages import EXPECTED_LOGITS, EXPECTED_ORDER, PAGES, QUERY

from pagesight.errors import PagesightError
from pagesight.integrations import VLReranker
from pagesight.retrieval.store import PageStore


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def reranker(standin_rerank_vl: Path) -> VLReranker:
    return VLReranker(model=str(standin_rerank_vl), trust_remote_code=True, device="cpu")


def store_documents(store: PageStore) -> list[Document]:
    """The store's pages as LangChain documents with absolute image paths (as the retrievers give them)."""
    return [
        Document(
            page_content=hit.text,
            metadata={"source": hit.source, "page": hit.page, "image": str(hit.image) if hit.image else None},
        )
        for hit in sorted(store.pages(), key=lambda h: h.page)
    ]


def test_fields_and_cheap_constructor() -> None:
    from pagesight.integrations.langchain.rerank import VLReranker as direct

    assert direct is VLReranker
    default = VLReranker(trust_remote_code=True)  # the 1B NVIDIA reranker: nothing loads
    assert default.model == "llama-nemotron-rerank-vl-1b-v2" and default.top_n == 5
    assert default.reranker.model == "llama-nemotron-rerank-vl-1b-v2"
    with pytest.raises(ValidationError):
        VLReranker(model="nanoranker", top_n=-1)
    with pytest.raises(ValidationError):
        VLReranker(model="nanoranker", batch_size=0)
    with pytest.raises(ValidationError):
        VLReranker(model="nanoranker", k=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="backend"):
        VLReranker(model="nanoranker", backend="ollama")  # type: ignore[arg-type]


def test_ranks_images_and_text_with_scores_in_copies(reranker: VLReranker, rerank_store: PageStore) -> None:
    docs = store_documents(rerank_store)
    before = copy.deepcopy(docs)
    out = reranker.compress_documents(docs, QUERY)
    assert [d.metadata["page"] for d in out] == EXPECTED_ORDER
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    for doc in out:
        assert isinstance(doc.metadata["relevance_score"], float)
        assert doc.metadata["relevance_score"] == pytest.approx(
            sigmoid(EXPECTED_LOGITS[doc.metadata["page"]]), abs=0.005
        )
        original = docs[doc.metadata["page"] - 1]
        assert doc is not original and doc.metadata is not original.metadata
        assert doc.page_content == original.page_content
        assert {k: v for k, v in doc.metadata.items() if k != "relevance_score"} == original.metadata
    assert docs == before  # inputs untouched
    assert all("relevance_score" not in d.metadata for d in docs)


def test_top_n(reranker: VLReranker, rerank_store: PageStore) -> None:
    docs = store_documents(rerank_store)
    two = reranker.model_copy(update={"top_n": 2}).compress_documents(docs, QUERY)
    assert [d.metadata["page"] for d in two] == EXPECTED_ORDER[:2]
    assert len(
        VLReranker(model=reranker.model, trust_remote_code=True, top_n=50).compress_documents(docs, QUERY)
    ) == len(docs)
    default = VLReranker(model=reranker.model, trust_remote_code=True)  # top_n=5 of more documents
    assert len(default.compress_documents(docs + docs[:2], QUERY)) == 5


def test_empty_input_and_top_n_zero_load_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    docs = [Document(page_content="Invoice 42")]
    assert VLReranker(model=str(broken)).compress_documents([], QUERY) == []
    assert VLReranker(model=str(broken), top_n=0).compress_documents(docs, QUERY) == []
    with pytest.raises(PagesightError):  # scoring needs the (broken) model: so the two above never loaded it
        VLReranker(model=str(broken)).compress_documents(docs, QUERY)


def test_relative_image_paths_resolve_against_the_store(
    reranker: VLReranker, rerank_store: PageStore
) -> None:
    from langchain_chroma import Chroma

    # what a plain LangChain Chroma query of a pagesight store returns: image paths relative to its images
    chroma = Chroma(collection_name="pagesight", persist_directory=rerank_store.location)
    docs = chroma.similarity_search_by_vector(np.ones(8).tolist(), k=len(PAGES))
    with_image = [d for d in docs if d.metadata["image"]]
    assert len(with_image) == 3 and all(not Path(d.metadata["image"]).is_absolute() for d in with_image)

    with pytest.raises(PagesightError, match=r"scan\.pdf"):  # without the store the path leads nowhere
        reranker.compress_documents(with_image, QUERY)
    for store in (rerank_store, rerank_store.location):  # the store, or its folder
        with_store = VLReranker(model=reranker.model, trust_remote_code=True, store=store)
        out = with_store.compress_documents(docs, QUERY)
        assert [d.metadata["page"] for d in out] == EXPECTED_ORDER
        assert all(not Path(d.metadata["image"]).is_absolute() for d in out if d.metadata["image"])


def test_an_absolute_image_path_ignores_the_store(reranker: VLReranker, tmp_path: Path) -> None:
    from PIL import Image

    red = tmp_path / "red.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(red)
    docs = [
        Document(page_content="Invoice total due."),
        Document(page_content="", metadata={"image": str(red)}),
    ]
    out = VLReranker(
        model=reranker.model, trust_remote_code=True, store=tmp_path / "elsewhere"
    ).compress_documents(docs, "what colour")
    assert out[0].metadata["image"] == str(red)  # red: +2, the text shares no word with the query


async def test_async_matches_sync(reranker: VLReranker, rerank_store: PageStore) -> None:
    docs = store_documents(rerank_store)
    sync = reranker.compress_documents(docs, QUERY)
    async_ = await reranker.acompress_documents(docs, QUERY)
    assert [d.page_content for d in async_] == [d.page_content for d in sync]
    assert [d.metadata for d in async_] == [d.metadata for d in sync]
    assert await reranker.acompress_documents([], QUERY) == []


# -- LangChain's retriever suite through a small test-only retriever ---------------------------------


class RerankedListRetriever(BaseRetriever):
    """Retrieves every document of a fixed list and keeps the ``k`` best by ``reranker``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    documents: list[Document]
    reranker: VLReranker
    k: int = 4

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        top_n = self.k if k is None else k
        return list(
            self.reranker.model_copy(update={"top_n": top_n}).compress_documents(self.documents, query)
        )


class TestRerankedRetrieverStandard(RetrieversIntegrationTests):
    documents: list[Document]
    reranker: VLReranker

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _setup(cls, reranker: VLReranker, rerank_store: PageStore) -> None:
        cls.documents = store_documents(rerank_store)
        cls.reranker = reranker

    @property
    def retriever_constructor(self) -> type[RerankedListRetriever]:
        return RerankedListRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"documents": self.documents, "reranker": self.reranker}

    @property
    def retriever_query_example(self) -> str:
        return QUERY


def test_reranked_retriever_returns_the_best_first(reranker: VLReranker, rerank_store: PageStore) -> None:
    retriever = RerankedListRetriever(documents=store_documents(rerank_store), reranker=reranker, k=2)
    assert [d.metadata["page"] for d in retriever.invoke(QUERY)] == EXPECTED_ORDER[:2]
    assert [d.metadata["page"] for d in retriever.invoke(QUERY, k=3)] == EXPECTED_ORDER[:3]


# -- real weights -------------------------------------------------------------------------------------

PASSAGES = [
    "Invoice 42: the total amount due is 1,250 euros, payable within thirty days.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "The cup final ended in a two-all draw and was decided on penalties.",
    "Heavy snow is expected in the mountains over the weekend.",
    "The night train to Vienna leaves from platform nine at half past seven.",
]
QUERIES = {
    "how much is due on the invoice?": 0,
    "how do green plants turn sunlight into sugar": 1,
    "which team won the cup final on penalties": 2,
    "snow forecast in the mountains this weekend": 3,
    "when does the train to Vienna leave": 4,
}


def test_nanoranker_ranks_the_right_passage_first() -> None:
    pytest.importorskip("nanoranker")
    reranker = VLReranker(model="nanoranker", top_n=2)
    docs = [Document(page_content=p, metadata={"n": i}) for i, p in enumerate(PASSAGES)]
    for query, best in QUERIES.items():
        out = reranker.compress_documents(docs, query)
        assert len(out) == 2 and out[0].metadata["n"] == best, query
        assert 0.0 <= out[1].metadata["relevance_score"] <= out[0].metadata["relevance_score"] <= 1.0

"""LateInteractionRetriever: LangChain's standard retriever suite, MaxSim ranking over real MiniLM tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import late_store
import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests
from pydantic import ValidationError

from pagesight.documents.page import Page
from pagesight.errors import StoreMismatchError
from pagesight.integrations import ColEmbedEmbeddings, LateInteractionRetriever, PageRetriever
from pagesight.models.base import EmbedderInfo
from pagesight.models.colembed import ColEmbedEncoder
from pagesight.retrieval.multivector import MultiVectorStore

pytest.importorskip("chromadb")

PAGES = [
    "Invoice 42: the total amount due is 1,250 euros, payable within thirty days.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "The cup final ended in a two-all draw and was decided on penalties.",
    "Heavy snow is expected in the mountains over the weekend.",
    "The night train to Vienna leaves from platform nine at half past seven.",
]
QUERIES = {
    "how much is due on the invoice?": 1,
    "how do green plants turn sunlight into sugar": 2,
    "which team won the cup final on penalties": 3,
    "snow forecast in the mountains this weekend": 4,
    "when does the train to Vienna leave": 5,
}
SOURCE = "pages.pdf"


def build_store(folder: Path, encoder: ColEmbedEncoder) -> MultiVectorStore:
    """A store of :data:`PAGES` (odd pages with a rendered image) written with ``encoder``'s tokens."""
    return late_store.build_store(folder, encoder, SOURCE, PAGES)


@pytest.fixture(scope="module")
def embeddings() -> ColEmbedEmbeddings:
    return ColEmbedEmbeddings(model="minilm-tokens", device="cpu")


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, embeddings: ColEmbedEmbeddings
) -> Iterator[MultiVectorStore]:
    store = build_store(tmp_path_factory.mktemp("late"), embeddings.encoder)
    yield store
    store.close()


class TestLateInteractionRetrieverStandard(RetrieversIntegrationTests):
    store: MultiVectorStore
    embeddings: ColEmbedEmbeddings

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _store(cls, store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
        cls.store = store
        cls.embeddings = embeddings

    @property
    def retriever_constructor(self) -> type[LateInteractionRetriever]:
        return LateInteractionRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store, "embeddings": self.embeddings}

    @property
    def retriever_query_example(self) -> str:
        return "how much is due on the invoice?"


def test_the_right_page_comes_first(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    retriever = LateInteractionRetriever(store=store, embeddings=embeddings, k=len(PAGES))
    for query, page in QUERIES.items():
        docs = retriever.invoke(query)
        assert [d.metadata["page"] for d in docs][0] == page, query
        assert len(docs) == len(PAGES)


def test_documents_carry_the_page(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    docs = LateInteractionRetriever(store=store, embeddings=embeddings, k=5).invoke("the invoice total")
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    for doc in docs:
        assert isinstance(doc, Document)
        assert set(doc.metadata) == {"source", "page", "image", "score", "id", "text_source"}
        assert doc.page_content == PAGES[doc.metadata["page"] - 1]
        assert doc.metadata["source"] == SOURCE and doc.id == doc.metadata["id"]
        assert isinstance(doc.metadata["score"], float) and doc.metadata["score"] > 0
        if doc.metadata["page"] % 2:
            assert isinstance(doc.metadata["image"], str) and Path(doc.metadata["image"]).is_file()
        else:
            assert doc.metadata["image"] is None
    # MaxSim of unit vectors: at most one per query token
    n_query_tokens = len(embeddings.embed_query_multivector("the invoice total"))
    assert docs[0].metadata["score"] <= n_query_tokens + 1e-4


def test_k_per_call_and_more_than_stored(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    retriever = LateInteractionRetriever(store=store, embeddings=embeddings, k=2)
    assert len(retriever.invoke("snow")) == 2
    assert len(retriever.invoke("snow", k=4)) == 4
    assert len(retriever.invoke("snow", k=50)) == len(PAGES)
    assert retriever.k == 2  # a per-call k does not stick


def test_exhaustive_and_candidates_agree(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    query = "when does the train to Vienna leave"
    base = LateInteractionRetriever(store=store, embeddings=embeddings, k=3).invoke(query)
    full = LateInteractionRetriever(store=store, embeddings=embeddings, k=3, exhaustive=True).invoke(query)
    assert [d.id for d in base] == [d.id for d in full]
    assert np.allclose([d.metadata["score"] for d in base], [d.metadata["score"] for d in full], atol=1e-3)
    few = LateInteractionRetriever(store=store, embeddings=embeddings, k=1).invoke(
        query, candidates=2, exhaustive=True
    )
    assert few[0].metadata["page"] == 5


def test_source_filter(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    retriever = LateInteractionRetriever(store=store, embeddings=embeddings, source="elsewhere.pdf")
    assert retriever.invoke("invoice") == []
    assert len(retriever.invoke("invoice", source=SOURCE, k=2)) == 2


def test_a_plain_encoder_works_too(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    retriever = LateInteractionRetriever(store=store, encoder=embeddings.encoder, k=1)
    assert retriever.invoke("who won the cup final")[0].metadata["page"] == 3


def test_constructor_checks(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    # neither: the model the store records embeds the queries (the alias is PageRetriever, mode "dense")
    recorded = LateInteractionRetriever(store=store)
    assert isinstance(recorded, PageRetriever) and recorded.mode == "dense"
    assert recorded.invoke("who won the cup final", k=1)[0].metadata["page"] == 3
    with pytest.raises(ValidationError, match="at most one of `embeddings`"):
        LateInteractionRetriever(store=store, embeddings=embeddings, encoder=embeddings.encoder)
    with pytest.raises(ValidationError, match="exactly one of `index`"):
        LateInteractionRetriever(embeddings=embeddings)
    with pytest.raises(ValidationError):
        LateInteractionRetriever(store=store, embeddings=embeddings, k=0)
    with pytest.raises(ValidationError):
        LateInteractionRetriever(store=store, embeddings=embeddings, top_k=3)  # type: ignore[call-arg]


class OtherModel:
    """A late-interaction encoder of another model: random unit token vectors."""

    info = EmbedderInfo("someone/other-colbert", None, 384, "late-interaction")

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        out = []
        for _ in texts:
            m = rng.standard_normal((6, 384)).astype(np.float32)
            out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
        return out

    encode_documents = encode_queries

    def encode_pages(self, pages: Sequence[Page]) -> list[np.ndarray]:
        return self.encode_queries([p.text for p in pages])


def test_another_model_is_refused(store: MultiVectorStore) -> None:
    retriever = LateInteractionRetriever(store=store, encoder=OtherModel())
    with pytest.raises(StoreMismatchError, match="someone/other-colbert"):
        retriever.invoke("invoice")


async def test_async_with_k(store: MultiVectorStore, embeddings: ColEmbedEmbeddings) -> None:
    retriever = LateInteractionRetriever(store=store, embeddings=embeddings)
    docs = await retriever.ainvoke("snow forecast in the mountains this weekend", k=2)
    assert len(docs) == 2 and docs[0].metadata["page"] == 4
    batch = await retriever.abatch(list(QUERIES))
    assert [d[0].metadata["page"] for d in batch] == list(QUERIES.values())

"""LateInteractionNodeRetriever: MaxSim over real MiniLM tokens, alone and inside a RetrieverQueryEngine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import late_store
import pytest
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, TextNode

from pagesight.errors import ConfigurationError
from pagesight.integrations import ColEmbedEmbedding, LateInteractionNodeRetriever, PageNodeRetriever
from pagesight.models.colembed import ColEmbedEncoder
from pagesight.retrieval.multivector import MultiVectorStore

pytest.importorskip("chromadb")

PAGES = [
    "Invoice 42: the total amount due is 1,250 euros, payable within thirty days.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "The cup final ended in a two-all draw and was decided on penalties.",
    "Heavy snow is expected in the mountains over the weekend.",
]
SOURCE = "report.pdf"


def build_store(folder: Path, encoder: ColEmbedEncoder) -> MultiVectorStore:
    """A store of :data:`PAGES` (odd pages with a rendered image) written with ``encoder``'s tokens."""
    return late_store.build_store(folder, encoder, SOURCE, PAGES)


@pytest.fixture(scope="module")
def embed_model() -> ColEmbedEmbedding:
    return ColEmbedEmbedding(device="cpu")


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, embed_model: ColEmbedEmbedding
) -> Iterator[MultiVectorStore]:
    store = build_store(tmp_path_factory.mktemp("late-li"), embed_model.encoder)
    yield store
    store.close()


def test_retrieve_returns_scored_pages_best_first(
    store: MultiVectorStore, embed_model: ColEmbedEmbedding
) -> None:
    retriever = LateInteractionNodeRetriever(store, embed_model, similarity_top_k=4)
    results = retriever.retrieve("how much is due on the invoice?")
    assert len(results) == 4 and all(isinstance(r, NodeWithScore) for r in results)
    assert all(r.score is not None for r in results)
    scores = [r.get_score() for r in results]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert results[0].node.metadata["page"] == 1
    for result in results:
        node = result.node
        number = node.metadata["page"]
        assert isinstance(node, TextNode) and node.text == PAGES[number - 1]
        assert node.metadata["source"] == SOURCE and node.node_id == node.metadata["id"]
        if number % 2:
            assert isinstance(node, ImageNode) and node.image_path == node.metadata["image"]
            assert Path(node.metadata["image"]).is_file()
        else:
            assert not isinstance(node, ImageNode) and node.metadata["image"] is None
        llm_view = node.get_content(metadata_mode=MetadataMode.LLM)
        assert SOURCE in llm_view and "image" not in llm_view.split("\n\n")[0]


def test_each_query_finds_its_page(store: MultiVectorStore, embed_model: ColEmbedEmbedding) -> None:
    retriever = LateInteractionNodeRetriever(store, embed_model, similarity_top_k=1)
    queries = {
        "how do green plants turn sunlight into sugar": 2,
        "which team won the cup final on penalties": 3,
        "snow forecast in the mountains this weekend": 4,
    }
    for query, page in queries.items():
        [best] = retriever.retrieve(query)
        assert best.node.metadata["page"] == page, query


def test_exhaustive_and_plain_encoder(store: MultiVectorStore, embed_model: ColEmbedEmbedding) -> None:
    retriever = LateInteractionNodeRetriever(
        store, encoder=embed_model.encoder, similarity_top_k=2, exhaustive=True
    )
    results = retriever.retrieve("penalties in the cup final")
    assert len(results) == 2 and results[0].node.metadata["page"] == 3


def test_constructor_checks(store: MultiVectorStore, embed_model: ColEmbedEmbedding) -> None:
    # neither: the model the store records embeds the queries (the alias is PageNodeRetriever, "dense")
    recorded = LateInteractionNodeRetriever(store, similarity_top_k=1)
    assert isinstance(recorded, PageNodeRetriever) and recorded.mode == "dense"
    assert recorded.retrieve("who won the cup final")[0].node.metadata["page"] == 3
    with pytest.raises(ConfigurationError, match="at most one of `embed_model`"):
        LateInteractionNodeRetriever(store, embed_model, encoder=embed_model.encoder)
    with pytest.raises(ConfigurationError, match="`similarity_top_k` must be an integer of at least 1"):
        LateInteractionNodeRetriever(store, embed_model, similarity_top_k=0)


def test_inside_a_retriever_query_engine(store: MultiVectorStore, embed_model: ColEmbedEmbedding) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    retriever = LateInteractionNodeRetriever(store, embed_model, similarity_top_k=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())  # MockLLM echoes its prompt
    response = engine.query("how much is due on the invoice?")
    assert response.source_nodes[0].node.metadata["page"] == 1
    assert "1,250 euros" in str(response)  # the page text reached the LLM's prompt
    assert str(response.source_nodes[0].node.metadata["image"]) not in str(response)


async def test_async_retrieve(store: MultiVectorStore, embed_model: ColEmbedEmbedding) -> None:
    retriever = LateInteractionNodeRetriever(store, embed_model, similarity_top_k=2)
    results = await retriever.aretrieve("snow forecast in the mountains this weekend")
    assert [r.node.metadata["page"] for r in results][0] == 4 and len(results) == 2

"""PageNodeRetriever: LlamaIndex's retriever contract over a real index, every mode, inside query engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("chromadb")

from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode  # noqa: E402

from pagesight import Index  # noqa: E402
from pagesight.errors import ConfigurationError, ImageQueryError  # noqa: E402
from pagesight.integrations import PageNodeRetriever  # noqa: E402
from pagesight.integrations.llama_index import PageNodeRetriever as FromPackage  # noqa: E402
from tests.integrations.page_index import COMPOST, FIREWALL  # noqa: E402


@pytest.fixture(scope="module")
def docs(page_docs: dict[str, Path]) -> dict[str, Path]:
    return page_docs


@pytest.fixture(scope="module")
def index(page_store: Path) -> Iterator[Index]:
    with Index.open(page_store) as opened:
        yield opened


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_retrieve_returns_scored_nodes_as_index_search_ranks_them(index: Index, mode: str) -> None:
    retriever = index.as_llamaindex_retriever(similarity_top_k=3, mode=mode)
    assert isinstance(retriever, BaseRetriever) and FromPackage is PageNodeRetriever
    results = retriever.retrieve(FIREWALL)
    hits = index.search(FIREWALL, k=3, mode=mode)  # type: ignore[arg-type]
    assert [(r.node.node_id, r.score) for r in results] == [(h.id, h.score) for h in hits]
    assert all(isinstance(r, NodeWithScore) for r in results)
    best = results[0].node.metadata
    assert (Path(best["source"]).name, best["page"]) == ("network.pdf", 2)
    for result, hit in zip(results, hits, strict=True):
        node = result.node
        assert isinstance(node, ImageNode) and isinstance(node, TextNode)  # every page here was rendered
        assert node.text == hit.text and node.image_path == node.metadata["image"] == str(hit.image)
        assert Path(node.image_path).is_file()
        llm_view = node.get_content(metadata_mode=MetadataMode.LLM)
        assert hit.source in llm_view and node.image_path not in llm_view  # paths hidden from the LLM


def test_similarity_top_k_source_and_query_bundle(index: Index, docs: dict[str, Path]) -> None:
    garden = str(docs["garden"])
    retriever = PageNodeRetriever(index, similarity_top_k=5, source=garden)
    results = retriever.retrieve(QueryBundle(FIREWALL))
    assert len(results) == 2 and {r.node.metadata["source"] for r in results} == {garden}
    assert len(PageNodeRetriever(index, similarity_top_k=1).retrieve(COMPOST)) == 1
    assert PageNodeRetriever(index, mode="bm25", source=str(docs["network"])).retrieve(COMPOST) == []


def test_a_folder_or_a_store_with_an_embed_model(index: Index) -> None:
    from pagesight.integrations import MatryoshkaEmbedding

    direct = PageNodeRetriever(index, similarity_top_k=3).retrieve(FIREWALL)
    want = [(r.node.node_id, r.score) for r in direct]
    by_folder = PageNodeRetriever(index.location, similarity_top_k=3).retrieve(FIREWALL)
    assert [(r.node.node_id, r.score) for r in by_folder] == want
    by_model = PageNodeRetriever(index.store, MatryoshkaEmbedding(), similarity_top_k=3).retrieve(FIREWALL)
    assert [r.node.node_id for r in by_model] == [i for i, _ in want]


async def test_aretrieve(index: Index) -> None:
    retriever = PageNodeRetriever(index, similarity_top_k=2)
    results = await retriever.aretrieve(COMPOST)
    assert len(results) == 2 and results[0].node.metadata["page"] == 2
    assert "garden" in results[0].node.metadata["source"]


def test_inside_a_retriever_query_engine_with_mock_llm(index: Index) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    engine = RetrieverQueryEngine.from_args(index.as_llamaindex_retriever(similarity_top_k=2), llm=MockLLM())
    response = engine.query(FIREWALL)  # MockLLM echoes its prompt
    assert response.source_nodes[0].node.metadata["page"] == 2
    assert "nftables" in str(response)  # the page text reached the LLM's prompt


def test_bad_arguments_are_refused(index: Index, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="`similarity_top_k` must be an integer of at least 1"):
        PageNodeRetriever(index, similarity_top_k=0)
    with pytest.raises(ConfigurationError, match="`mode` must be one of"):
        PageNodeRetriever(index, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no store at"):
        PageNodeRetriever(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="at most one of `embed_model`"):
        PageNodeRetriever(index, index.encoder, encoder=index.encoder)
    with pytest.raises(ImageQueryError, match="all-MiniLM|all-minilm"):
        PageNodeRetriever(index).image_retrieve(b"not an image")

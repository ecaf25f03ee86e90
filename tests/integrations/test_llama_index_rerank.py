"""VLRerankPostprocessor: order, top_n, untouched inputs, images from a store, inside a query engine."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode
from pydantic import ValidationError
from rerank_pages import EXPECTED_LOGITS, EXPECTED_ORDER, QUERY

from pagesight.errors import PagesightError
from pagesight.integrations import VLRerankPostprocessor
from pagesight.retrieval.store import PageStore


@pytest.fixture(scope="module")
def rerank(standin_rerank_vl: Path) -> VLRerankPostprocessor:
    return VLRerankPostprocessor(model=str(standin_rerank_vl), trust_remote_code=True, device="cpu")


def store_nodes(store: PageStore, *, relative: bool = False) -> list[NodeWithScore]:
    """The store's pages as retrieved nodes (ImageNode with ``image_path`` when the page has an image).

    ``relative=True`` keeps ``metadata["image"]`` relative to the store's image folder (as Chroma
    holds it) and sets no ``image_path``; otherwise both are absolute, as the pagesight retrievers
    give them.
    """
    nodes = []
    for hit in sorted(store.pages(), key=lambda h: h.page):
        metadata = {"source": hit.source, "page": hit.page, "image": None}
        if hit.image is None:
            node: TextNode = TextNode(text=hit.text, id_=f"p{hit.page}", metadata=metadata)
        elif relative:
            metadata["image"] = str(hit.image.relative_to(store.image_dir))
            node = TextNode(text=hit.text, id_=f"p{hit.page}", metadata=metadata)
        else:
            metadata["image"] = str(hit.image)
            node = ImageNode(text=hit.text, id_=f"p{hit.page}", metadata=metadata, image_path=str(hit.image))
        nodes.append(NodeWithScore(node=node, score=1.0 / hit.page))
    return nodes


def pages(nodes: list[NodeWithScore]) -> list[int]:
    return [n.node.metadata["page"] for n in nodes]


def test_fields_and_cheap_constructor() -> None:
    from pagesight.integrations.llama_index import VLRerankPostprocessor as direct

    assert direct is VLRerankPostprocessor
    default = VLRerankPostprocessor(trust_remote_code=True)  # the 1B NVIDIA reranker: nothing loads
    assert default.model == "llama-nemotron-rerank-vl-1b-v2" and default.top_n == 5
    assert default.reranker.model == "llama-nemotron-rerank-vl-1b-v2"
    assert VLRerankPostprocessor.class_name() == "PagesightVLRerankPostprocessor"
    with pytest.raises(ValidationError):
        VLRerankPostprocessor(model="nanoranker", top_n=-1)
    with pytest.raises(ValidationError):
        VLRerankPostprocessor(model="nanoranker", similarity_top_k=3)  # type: ignore[call-arg]


def test_a_query_is_required(rerank: VLRerankPostprocessor, rerank_store: PageStore) -> None:
    with pytest.raises(ValueError, match="needs a query"):
        rerank.postprocess_nodes(store_nodes(rerank_store))
    with pytest.raises(ValueError, match="needs a query"):
        rerank.postprocess_nodes([])


def test_ranks_images_and_text_into_new_nodes(rerank: VLRerankPostprocessor, rerank_store: PageStore) -> None:
    nodes = store_nodes(rerank_store)
    before = copy.deepcopy(nodes)
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    assert pages(out) == EXPECTED_ORDER
    scores = [n.score for n in out]
    assert scores == sorted(scores, reverse=True)
    for result in out:
        assert isinstance(result.score, float)
        logit = EXPECTED_LOGITS[result.node.metadata["page"]]
        assert result.score == pytest.approx(1 / (1 + math.exp(-logit)), abs=0.005)
        assert all(result is not n for n in nodes)
    assert nodes == before  # inputs untouched: nodes, metadata and the retriever's scores
    assert [n.score for n in nodes] == [1.0 / p for p in range(1, 6)]
    bundle = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    assert [(n.node.node_id, n.score) for n in bundle] == [(n.node.node_id, n.score) for n in out]


def test_top_n_empty_and_zero(rerank: VLRerankPostprocessor, rerank_store: PageStore, tmp_path: Path) -> None:
    nodes = store_nodes(rerank_store)
    two = rerank.model_copy(update={"top_n": 2}).postprocess_nodes(nodes, query_str=QUERY)
    assert pages(two) == EXPECTED_ORDER[:2]
    assert len(rerank.postprocess_nodes(nodes + nodes[:2], query_str=QUERY)) == 5  # default top_n
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    assert VLRerankPostprocessor(model=str(broken)).postprocess_nodes([], query_str=QUERY) == []
    assert VLRerankPostprocessor(model=str(broken), top_n=0).postprocess_nodes(nodes, query_str=QUERY) == []
    with pytest.raises(PagesightError):  # scoring needs the (broken) model: the two above never loaded it
        VLRerankPostprocessor(model=str(broken)).postprocess_nodes(nodes, query_str=QUERY)


def test_relative_images_resolve_against_the_store(
    rerank: VLRerankPostprocessor, rerank_store: PageStore
) -> None:
    nodes = store_nodes(rerank_store, relative=True)
    with pytest.raises(PagesightError, match=r"scan\.pdf"):
        rerank.postprocess_nodes(nodes, query_str=QUERY)
    for store in (rerank_store, rerank_store.location):
        with_store = VLRerankPostprocessor(model=rerank.model, trust_remote_code=True, store=store)
        assert pages(with_store.postprocess_nodes(nodes, query_str=QUERY)) == EXPECTED_ORDER


def test_image_path_of_an_image_node_without_metadata(rerank: VLRerankPostprocessor, tmp_path: Path) -> None:
    from PIL import Image

    red = tmp_path / "red.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(red)
    nodes = [
        NodeWithScore(node=TextNode(text="Invoice total due.", id_="text"), score=0.9),
        NodeWithScore(node=ImageNode(image_path=str(red), id_="red"), score=0.1),
    ]
    assert [n.node.node_id for n in rerank.postprocess_nodes(nodes, query_str="what colour")] == [
        "red",
        "text",
    ]


async def test_async_matches_sync(rerank: VLRerankPostprocessor, rerank_store: PageStore) -> None:
    nodes = store_nodes(rerank_store)
    sync = rerank.postprocess_nodes(nodes, query_str=QUERY)
    async_ = await rerank.apostprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in async_] == [(n.node.node_id, n.score) for n in sync]
    with pytest.raises(ValueError, match="needs a query"):
        await rerank.apostprocess_nodes(nodes)


def test_in_a_retriever_query_engine(rerank: VLRerankPostprocessor, rerank_store: PageStore) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    from pagesight.integrations import MatryoshkaEmbedding

    index = VectorStoreIndex(
        [n.node for n in store_nodes(rerank_store)], embed_model=MatryoshkaEmbedding(device="cpu")
    )
    retriever = index.as_retriever(similarity_top_k=5)
    top2 = rerank.model_copy(update={"top_n": 2})
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM(), node_postprocessors=[top2])
    retrieved = engine.retrieve(QueryBundle(QUERY))
    assert pages(retrieved) == EXPECTED_ORDER[:2]
    response = engine.query(QUERY)  # MockLLM echoes its prompt: the reranked pages' text is in it
    assert pages(response.source_nodes) == EXPECTED_ORDER[:2]
    assert response.source_nodes[0].score == pytest.approx(retrieved[0].score)
    assert "Invoice page." in str(response) and "Snow in the mountains." not in str(response)

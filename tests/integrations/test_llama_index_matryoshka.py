"""MatryoshkaEmbedding in a LlamaIndex VectorStoreIndex over Chroma."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from pagesight.integrations import MatryoshkaEmbedding

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("llama_index.vector_stores.chroma")

PAGES = {
    "invoice": "Invoice 42: the total amount due is 1,250 euros, payable within thirty days.",
    "plants": "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "football": "The cup final ended in a two-all draw and was decided on penalties.",
    "weather": "Heavy snow is expected in the mountains over the weekend.",
}


def retrieve_top(embed_model: MatryoshkaEmbedding, query: str) -> str:
    from chromadb.config import Settings
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(f"pages-{uuid.uuid4().hex[:8]}")
    store = ChromaVectorStore(chroma_collection=collection)
    nodes = [TextNode(text=text, id_=key) for key, text in PAGES.items()]
    index = VectorStoreIndex(
        nodes, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed_model
    )
    hits = index.as_retriever(similarity_top_k=1).retrieve(query)
    assert collection.count() == len(PAGES)
    return str(hits[0].node.node_id)


def test_chroma_index_finds_the_right_node() -> None:
    embed_model = MatryoshkaEmbedding(device="cpu")
    assert retrieve_top(embed_model, "how much money do I owe on the bill?") == "invoice"
    assert retrieve_top(embed_model, "how do plants make food from light") == "plants"


def test_truncated_vectors_still_retrieve() -> None:
    embed_model = MatryoshkaEmbedding(dimensions=128, device="cpu")
    assert len(embed_model.get_text_embedding("x")) == 128
    assert retrieve_top(embed_model, "who won the final?") == "football"


def test_fields_and_class_name() -> None:
    embed_model = MatryoshkaEmbedding(model="all-minilm-l6-v2", dimensions=64, batch_size=8)
    assert embed_model.model_name == "all-minilm-l6-v2" and embed_model.embed_batch_size == 8
    assert MatryoshkaEmbedding.class_name() == "PagesightMatryoshkaEmbedding"
    with pytest.raises(ValueError, match="between 1 and 384"):
        MatryoshkaEmbedding(dimensions=999)


async def test_async_embeddings() -> None:
    embed_model = MatryoshkaEmbedding(device="cpu")
    query = await embed_model.aget_query_embedding("question")
    texts = await embed_model.aget_text_embedding_batch(["a", "b", "c"])
    assert len(query) == 384 and len(texts) == 3


@pytest.mark.enable_socket
def test_chroma_index_with_the_ollama_backend(ollama_server: Any) -> None:
    embed_model = MatryoshkaEmbedding(model="ollama:nomic-minilm", base_url=ollama_server.url, dimensions=128)
    assert retrieve_top(embed_model, "snow forecast for the weekend") == "weather"
    assert "search_query: snow forecast for the weekend" in ollama_server.inputs
    assert all(t.startswith(("search_query: ", "search_document: ")) for t in ollama_server.inputs)
    assert f"search_document: {PAGES['invoice']}" in ollama_server.inputs

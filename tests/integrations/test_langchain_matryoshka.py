"""MatryoshkaEmbeddings: LangChain's standard embeddings suites plus pagesight's own checks."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from pagesight.integrations import MatryoshkaEmbeddings

PARAMS = {"model": "all-minilm-l6-v2", "device": "cpu"}


class TestMatryoshkaEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[MatryoshkaEmbeddings]:
        return MatryoshkaEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(PARAMS)


class TestMatryoshkaEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[MatryoshkaEmbeddings]:
        return MatryoshkaEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(PARAMS)


def test_lazy_export_is_the_class() -> None:
    from pagesight.integrations.langchain import MatryoshkaEmbeddings as direct

    assert MatryoshkaEmbeddings is direct


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError):
        MatryoshkaEmbeddings(modle="all-minilm-l6-v2")  # type: ignore[call-arg]


def test_bad_dimensions_message_names_field_and_limits() -> None:
    with pytest.raises(
        ValueError, match="`dimensions` must be an integer between 1 and 384 for all-minilm-l6-v2, got 1024"
    ):
        MatryoshkaEmbeddings(dimensions=1024)
    with pytest.raises(ValidationError):
        MatryoshkaEmbeddings(batch_size=0)


def test_shapes_and_unit_length() -> None:
    emb = MatryoshkaEmbeddings(dimensions=128, device="cpu")
    docs = emb.embed_documents(["alpha", "beta", "gamma"])
    query = emb.embed_query("alpha")
    assert len(docs) == 3 and all(len(v) == 128 for v in docs) and len(query) == 128
    assert all(isinstance(x, float) for x in query)
    assert np.allclose(np.linalg.norm(np.array(docs), axis=1), 1.0, atol=1e-5)
    assert emb.embed_documents([]) == []


def test_retrieval_through_a_langchain_vector_store() -> None:
    store = InMemoryVectorStore(MatryoshkaEmbeddings(device="cpu"))
    store.add_documents(
        [
            Document(
                page_content="The invoice total is 1,250 euros, due in thirty days.", metadata={"page": 1}
            ),
            Document(
                page_content="Photosynthesis turns sunlight into chemical energy.", metadata={"page": 2}
            ),
            Document(page_content="The match ended in a two-all draw.", metadata={"page": 3}),
        ]
    )
    assert store.similarity_search("how much do I have to pay?", k=1)[0].metadata["page"] == 1


async def test_async_calls_do_not_block_the_event_loop() -> None:
    emb = MatryoshkaEmbeddings(device="cpu")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    vectors = await emb.aembed_documents(["a long enough sentence to take some time " * 20] * 16)
    query = await emb.aembed_query("question")
    done.set()
    await task
    assert len(vectors) == 16 and len(query) == 384
    assert ticks > 1  # the loop kept running while the model worked in a thread


@pytest.mark.enable_socket
def test_query_and_document_prefixes_through_ollama(ollama_server: Any) -> None:
    emb = MatryoshkaEmbeddings(model="ollama:nomic-minilm", base_url=ollama_server.url, dimensions=64)
    emb.embed_query("where")
    emb.embed_documents(["there"])
    override = MatryoshkaEmbeddings(
        model="ollama:nomic-minilm", base_url=ollama_server.url, query_prefix="", document_prefix="doc: "
    )
    override.embed_query("where")
    override.embed_documents(["there"])
    assert ollama_server.inputs == ["search_query: where", "search_document: there", "where", "doc: there"]

"""build_llamaindex_query_engine: real llama_index Ollama against the Ollama-protocol double, real stores.

The double's chat models answer with :func:`tests.ollama_double.citing_reply`: the first sentence of
the shown page sharing the most words with the question, and that page's label.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.llms.ollama")
pytest.importorskip("chromadb")

from llama_index.core import Settings, VectorStoreIndex  # noqa: E402
from llama_index.core.base.response.schema import (  # noqa: E402
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.schema import ImageNode, TextNode  # noqa: E402
from llama_index.llms.ollama import Ollama  # noqa: E402

from pagesight.errors import ConfigurationError  # noqa: E402
from pagesight.integrations import (  # noqa: E402
    LateInteractionNodeRetriever,
    MatryoshkaEmbedding,
    VLRerankPostprocessor,
)
from pagesight.pipelines import build_llamaindex_query_engine  # noqa: E402
from pagesight.pipelines.ingest import ingest  # noqa: E402
from pagesight.pipelines.prompt import SYSTEM_PROMPT  # noqa: E402
from pagesight.retrieval.search import PageSearcher  # noqa: E402
from tests.ollama_double import OllamaDouble  # noqa: E402
from tests.pipelines.conftest import (  # noqa: E402
    COMPOST,
    FIREWALL,
    INVENTOR,
    TEXT,
    TOMATOES,
    VISION,
)


def ollama(server: OllamaDouble, model: str = TEXT) -> Ollama:
    return Ollama(model=model, base_url=server.url, request_timeout=30.0, temperature=0.0)


def _ids_scores(nodes: list[Any]) -> list[tuple[str, float]]:
    return [(n.node.node_id, n.score) for n in nodes]


def test_text_model_answer_cites_the_right_page_with_its_image_and_score(store, encoder, docs, server):
    engine = build_llamaindex_query_engine(ollama(server), store=store, embedder=encoder, k=3)
    response = engine.query(COMPOST)

    assert isinstance(response, Response)
    assert response.response == "Compost improves soil structure. [garden.pdf p.2]"
    nodes = response.source_nodes
    hits = PageSearcher(store, encoder).search(COMPOST, k=3)
    assert _ids_scores(nodes) == [(h.id, h.score) for h in hits]  # the store search's pages, best first
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert all(isinstance(n.node, ImageNode) and Path(n.node.image_path).is_file() for n in nodes)
    page = next(
        n.node for n in nodes if n.node.metadata["page"] == 2 and "garden" in n.node.metadata["source"]
    )
    assert response.metadata == {
        "citations": [
            {
                "source": str(docs["garden"]),
                "page": 2,
                "image": page.image_path,
                "score": page.metadata["score"],
                "page_label": None,  # the test PDF defines no page labels
            }
        ],
        "unmatched_citations": [],
    }
    assert page.metadata["image"] == page.image_path and "image" in page.excluded_llm_metadata_keys

    # what the Ollama LLM sent: pagesight's system prompt, the labelled pages and the question, no images
    [request] = server.chats
    system, user = request["messages"]
    assert (system["role"], system["content"]) == ("system", SYSTEM_PROMPT)
    assert "Page [garden.pdf p.2]:\nCompost improves soil structure." in user["content"]
    assert user["content"].endswith(f"Question: {COMPOST}")
    assert server.chat_images == [[]]


@pytest.mark.parametrize(("images", "max_images", "expected"), [(None, 2, 2), (None, 5, 3), (False, 3, 0)])
def test_vision_model_gets_page_images_by_default(store, encoder, server, images, max_images, expected):
    engine = build_llamaindex_query_engine(
        ollama(server, VISION),
        store=store,
        embedder=encoder,
        k=3,
        images=images,
        max_images=max_images,
        max_pixels=20_000,
    )
    response = engine.query(FIREWALL)

    assert response.response.endswith("[network.pdf p.2]")
    sizes = server.chat_images[-1]
    assert len(sizes) == expected
    assert all(15_000 < w * h <= 20_000 for w, h in sizes)


def test_text_model_gets_no_images_when_left_to_decide(store, encoder, server):
    build_llamaindex_query_engine(ollama(server), store=store, embedder=encoder, k=3).query(FIREWALL)
    assert server.chat_images == [[]]
    assert any(r.path == "/api/show" for r in server.requests)  # it asked the model's capabilities


def test_streaming_yields_the_answer_piece_by_piece_then_fills_the_citations(store, encoder, server):
    engine = build_llamaindex_query_engine(ollama(server), store=store, embedder=encoder, k=3, streaming=True)
    response = engine.query(TOMATOES)

    assert isinstance(response, StreamingResponse)
    assert response.metadata == {"citations": [], "unmatched_citations": []}  # nothing read yet
    pieces = list(response.response_gen)
    assert len(pieces) >= 2
    assert "".join(pieces) == "Tomatoes need full sun and regular watering. [garden.pdf p.1]"
    assert [(Path(c["source"]).name, c["page"]) for c in response.metadata["citations"]] == [
        ("garden.pdf", 1)
    ]
    assert len(response.source_nodes) == 3


def test_aquery_answers_and_streams(store, encoder, server):
    plain = build_llamaindex_query_engine(ollama(server), store=store, embedder=encoder, k=3)
    streaming = build_llamaindex_query_engine(
        ollama(server), store=store, embedder=encoder, k=3, streaming=True
    )

    async def run() -> tuple[Any, Any, list[str]]:
        answer = await plain.aquery(COMPOST)
        stream = await streaming.aquery(FIREWALL)
        pieces = [p async for p in stream.async_response_gen()]
        return answer, stream, pieces

    answer, stream, pieces = asyncio.run(run())
    assert isinstance(answer, Response) and answer.metadata["citations"][0]["page"] == 2
    assert answer.response == plain.query(COMPOST).response
    assert isinstance(stream, AsyncStreamingResponse) and len(pieces) >= 2
    assert "".join(pieces).endswith("[network.pdf p.2]")
    assert [(Path(c["source"]).name, c["page"]) for c in stream.metadata["citations"]] == [("network.pdf", 2)]


def test_invented_citation_is_listed_as_unmatched(store, encoder, server):
    engine = build_llamaindex_query_engine(ollama(server, INVENTOR), store=store, embedder=encoder, k=3)
    response = engine.query(COMPOST)
    assert response.metadata["unmatched_citations"] == ["[made-up.pdf p.9]"]
    assert [(Path(c["source"]).name, c["page"]) for c in response.metadata["citations"]] == [
        ("garden.pdf", 2)
    ]


def test_settings_llm_is_used_when_no_llm_is_given(store, encoder, server, monkeypatch):
    monkeypatch.setattr(Settings, "_llm", ollama(server))
    response = build_llamaindex_query_engine(store=store, embedder=encoder, k=3).query(COMPOST)
    assert response.response.endswith("[garden.pdf p.2]") and len(server.chats) == 1


def test_completion_llm_gets_the_prompt_as_one_string(store, encoder):
    # llama-index-core's MockLLM is a completion model (is_chat_model False) that echoes its prompt
    with pytest.warns(UserWarning, match="images=True"):
        response = build_llamaindex_query_engine(
            MockLLM(), store=store, embedder=encoder, k=2, images=True
        ).query(COMPOST)
    assert response.response.startswith(SYSTEM_PROMPT + "\n\nPage [")
    assert response.response.endswith(f"Question: {COMPOST}\nAnswer:")
    # the echoed prompt names both shown pages, and the system prompt's example label, not retrieved
    assert len(response.metadata["citations"]) == 2
    assert response.metadata["unmatched_citations"] == ["[report.pdf p.3]"]


# -- rerankers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nanoranker() -> Any:
    from pagesight.models.rerank import Reranker

    return Reranker("nanoranker").load()


@pytest.mark.filterwarnings("ignore:nanoranker is a text-only reranker")
def test_postprocessor_and_reranker_name_order_pages_by_the_rerankers_scores(
    store, encoder, server, nanoranker
):
    candidates = PageSearcher(store, encoder).search(FIREWALL, k=5)
    expected = nanoranker.score(FIREWALL, [h.text for h in candidates])
    order = np.argsort(-expected, kind="stable")[:2]

    for reranker in (VLRerankPostprocessor(model="nanoranker", top_n=5), "nanoranker"):
        engine = build_llamaindex_query_engine(
            ollama(server), store=store, embedder=encoder, reranker=reranker, k=2, rerank_candidates=5
        )
        response = engine.query(FIREWALL)
        assert [n.node.node_id for n in response.source_nodes] == [candidates[i].id for i in order]
        np.testing.assert_allclose([n.score for n in response.source_nodes], expected[order], rtol=1e-5)
        assert [n.node.metadata["score"] for n in response.source_nodes] == [
            n.score for n in response.source_nodes
        ]
        assert response.metadata["citations"][0]["score"] == response.source_nodes[0].score


# -- retrievers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def late(tmp_path_factory: pytest.TempPathFactory, docs: dict[str, Path]) -> Iterator[tuple[Any, Any]]:
    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.retrieval.multivector import MultiVectorStore

    encoder = ColEmbedEncoder("minilm-tokens", device="cpu")
    store = MultiVectorStore(tmp_path_factory.mktemp("engine-late") / "store")
    assert ingest(list(docs.values()), store, encoder, show_progress=False).ok
    yield store, encoder
    store.close()


@pytest.mark.filterwarnings("ignore:nanoranker is a text-only reranker")
def test_late_interaction_retriever_pages_reach_the_model(late, server, nanoranker):
    store, encoder = late
    retriever = LateInteractionNodeRetriever(store, encoder=encoder, similarity_top_k=3)
    response = build_llamaindex_query_engine(ollama(server), retriever=retriever, k=3).query(FIREWALL)

    assert _ids_scores(response.source_nodes) == _ids_scores(
        retriever.retrieve(FIREWALL)
    )  # MaxSim, untouched
    assert response.response.endswith("[network.pdf p.2]")
    [cited] = response.metadata["citations"]
    assert cited["page"] == 2 and Path(cited["image"]).is_file()
    assert all(n.node.metadata["score"] == n.score for n in response.source_nodes)

    # a pagesight reranker over what the retriever returns: the reranker's top k, with its scores
    wide = LateInteractionNodeRetriever(store, encoder=encoder, similarity_top_k=5)
    pool = wide.retrieve(FIREWALL)
    expected = nanoranker.score(FIREWALL, [n.node.get_content() for n in pool])
    order = np.argsort(-expected, kind="stable")[:2]
    ranked = build_llamaindex_query_engine(ollama(server), retriever=wide, reranker=nanoranker, k=2).query(
        FIREWALL
    )
    assert [n.node.node_id for n in ranked.source_nodes] == [pool[i].node.node_id for i in order]
    np.testing.assert_allclose([n.score for n in ranked.source_nodes], expected[order], rtol=1e-5)


def test_vector_index_nodes_are_cited_by_their_metadata(server):
    nodes = [
        # what LlamaIndex's PDF readers write: file_name and the printed page_label
        TextNode(
            text="Invoice 42: the total amount due is 1,250 euros.",
            metadata={"file_name": "invoice.pdf", "page_label": "2"},
        ),
        # a loader counting "page" from 0 whose printed label is not a number: the fifth page
        TextNode(
            text="The night train to Vienna leaves from platform nine at half past seven.",
            metadata={"file_path": "/data/trains.pdf", "page": 4, "page_label": "iv"},
        ),
        TextNode(text="Heavy snow is expected in the mountains over the weekend.", metadata={}),
    ]
    index = VectorStoreIndex(nodes, embed_model=MatryoshkaEmbedding())
    engine = build_llamaindex_query_engine(
        ollama(server), retriever=index.as_retriever(similarity_top_k=3), k=3
    )
    response = engine.query("what is the total amount due on invoice 42?")

    assert response.response == "Invoice 42: the total amount due is 1,250 euros. [invoice.pdf p.2]"
    [cited] = response.metadata["citations"]
    first = response.source_nodes[0]
    assert (cited["source"], cited["page"], cited["image"]) == ("invoice.pdf", 2, None)
    scores = [n.score for n in response.source_nodes]
    assert cited["score"] == first.score == max(scores) and scores == sorted(scores, reverse=True)  # cosine
    assert first.node.metadata["page_label"] == "2" and first.node.metadata["page"] == 2  # original keys kept
    pages = {n.node.metadata["source"]: n.node.metadata["page"] for n in response.source_nodes}
    assert pages == {"invoice.pdf": 2, "/data/trains.pdf": 5, "document": 1}
    user = server.chats[-1]["messages"][1]["content"]
    assert "Page [trains.pdf p.5 (printed iv)]:" in user and "Page [document p.1]:" in user

    train = engine.query("when does the night train to Vienna leave?")
    assert train.response.endswith("[trains.pdf p.5 (printed iv)]")
    assert [(c["source"], c["page"]) for c in train.metadata["citations"]] == [("/data/trains.pdf", 5)]


# -- bad arguments ------------------------------------------------------------------------------------


def test_bad_arguments_raise_configuration_errors(store, encoder, server, tmp_path, monkeypatch):
    llm = ollama(server)
    with pytest.raises(ConfigurationError, match="store=.*retriever="):
        build_llamaindex_query_engine(llm)
    with pytest.raises(ConfigurationError, match="no store at"):
        build_llamaindex_query_engine(llm, store=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="`k` must be"):
        build_llamaindex_query_engine(llm, store=store, k=0)
    with pytest.raises(ConfigurationError, match="BaseRetriever"):
        build_llamaindex_query_engine(llm, retriever=store)
    with pytest.raises(ConfigurationError, match="`llm` must be"):
        build_llamaindex_query_engine("llama3.2", store=store)
    with pytest.raises(ConfigurationError, match="`embedder`.*retriever="):
        build_llamaindex_query_engine(llm, store=store, embedder=object())
    with pytest.raises(ConfigurationError, match="`reranker` must be"):
        build_llamaindex_query_engine(llm, store=store, reranker=42)
    with pytest.raises(ConfigurationError, match="`images` must be"):
        build_llamaindex_query_engine(llm, store=store, images="yes")  # type: ignore[arg-type]
    monkeypatch.setattr(Settings, "_llm", None)
    with pytest.raises(ConfigurationError, match="Settings.llm"):
        build_llamaindex_query_engine(store=store)
    assert server.chats == []

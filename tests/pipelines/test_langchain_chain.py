"""build_langchain_chain: real ChatOllama / OllamaLLM against the Ollama-protocol double, real stores, MiniLM.

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

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_ollama")
pytest.importorskip("chromadb")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.tracers.context import collect_runs  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402
from langchain_ollama import ChatOllama, OllamaLLM  # noqa: E402

from pagesight.errors import ConfigurationError  # noqa: E402
from pagesight.integrations import LateInteractionRetriever, MatryoshkaEmbeddings, VLReranker  # noqa: E402
from pagesight.pipelines import build_langchain_chain  # noqa: E402
from pagesight.pipelines._retrieve import page_hit, page_number  # noqa: E402
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


def chat(server: OllamaDouble, model: str = TEXT) -> ChatOllama:
    return ChatOllama(model=model, base_url=server.url, temperature=0)


def _ids_scores(docs: list[Document]) -> list[tuple[str, float]]:
    return [(d.metadata["id"], d.metadata["score"]) for d in docs]


def test_chat_model_answer_cites_the_right_page_with_its_image_and_score(store, encoder, docs, server):
    chain = build_langchain_chain(chat(server), store=store, embedder=encoder, k=3)
    out = chain.invoke(COMPOST)

    assert list(out) == ["question", "answer", "citations", "unmatched_citations", "retrieved"]
    assert out["question"] == COMPOST
    assert out["answer"] == "Compost improves soil structure. [garden.pdf p.2]"
    retrieved = out["retrieved"]
    assert len(retrieved) == 3 and all(isinstance(d, Document) for d in retrieved)
    scores = [d.metadata["score"] for d in retrieved]
    assert scores == sorted(scores, reverse=True)
    # the same pages, in the same order and with the same scores, as the store search the chain wraps
    hits = PageSearcher(store, encoder).search(COMPOST, k=3)
    assert _ids_scores(retrieved) == [(h.id, h.score) for h in hits]
    [cited] = out["citations"]
    page = next(
        d for d in retrieved if d.metadata["page"] == 2 and d.metadata["source"] == str(docs["garden"])
    )
    assert cited == {
        "source": str(docs["garden"]),
        "page": 2,
        "image": page.metadata["image"],
        "score": page.metadata["score"],
        "page_label": None,  # the test PDF defines no page labels
    }
    assert Path(cited["image"]).is_file() and Path(cited["image"]).is_relative_to(store.image_dir)
    assert out["unmatched_citations"] == []

    # what ChatOllama sent: pagesight's system prompt, the labelled pages and the question, no images
    [request] = server.chats
    system, user = request["messages"]
    assert (system["role"], system["content"]) == ("system", SYSTEM_PROMPT)
    assert (
        user["role"] == "user"
        and "Page [garden.pdf p.2]:\nCompost improves soil structure." in user["content"]
    )
    assert user["content"].rstrip().endswith(f"Question: {COMPOST}")
    assert not user.get("images") and server.chat_images == [[]]


@pytest.mark.parametrize(("max_images", "expected"), [(2, 2), (5, 3)])
def test_vision_model_gets_min_of_max_images_and_pages_each_within_max_pixels(
    store, encoder, server, max_images, expected
):
    chain = build_langchain_chain(
        chat(server, VISION),
        store=store,
        embedder=encoder,
        k=3,
        images=True,
        max_images=max_images,
        max_pixels=20_000,
    )
    out = chain.invoke({"question": FIREWALL})

    assert out["answer"].endswith("[network.pdf p.2]")
    [sizes] = server.chat_images
    assert len(sizes) == expected
    assert all(w * h <= 20_000 and w * h > 15_000 for w, h in sizes)  # scaled down, not shrunk to nothing
    # the text tells the model which label each image shows, in the order the images come
    labels = [f"[{Path(d.metadata['source']).name} p.{d.metadata['page']}]" for d in out["retrieved"]][
        :expected
    ]
    order = ", ".join(f"image {i} is {label}" for i, label in enumerate(labels, 1))
    assert f"The attached images show these pages: {order}." in server.chats[-1]["messages"][1]["content"]


def test_text_model_gets_no_images_unless_asked(store, encoder, server):
    build_langchain_chain(chat(server, VISION), store=store, embedder=encoder, k=3).invoke(FIREWALL)
    assert server.chat_images == [[]]


def test_stream_yields_the_answer_piece_by_piece_then_the_citations(store, encoder, server):
    chain = build_langchain_chain(chat(server), store=store, embedder=encoder, k=3)
    chunks = list(chain.stream(TOMATOES))

    assert chunks[0] == {"question": TOMATOES}
    pieces = [c["answer"] for c in chunks if "answer" in c]
    assert len(pieces) >= 2 and all(set(c) == {"answer"} for c in chunks[1:-1])
    assert "".join(pieces) == "Tomatoes need full sun and regular watering. [garden.pdf p.1]"
    assert set(chunks[-1]) == {"citations", "unmatched_citations", "retrieved"}
    assert [(c["page"], Path(c["source"]).name) for c in chunks[-1]["citations"]] == [(1, "garden.pdf")]
    # the chunks add up to what invoke returns
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total == chain.invoke(TOMATOES)


def test_batch_ainvoke_and_astream_answer_each_question(store, encoder, server):
    chain = build_langchain_chain(chat(server), store=store, embedder=encoder, k=3)
    first, second = chain.batch([COMPOST, FIREWALL])
    assert first["citations"][0]["page"] == 2 and Path(first["citations"][0]["source"]).name == "garden.pdf"
    assert (
        second["citations"][0]["page"] == 2 and Path(second["citations"][0]["source"]).name == "network.pdf"
    )

    async def run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        result = await chain.ainvoke({"question": COMPOST})
        chunks = [c async for c in chain.astream(FIREWALL)]
        return result, chunks

    result, chunks = asyncio.run(run())
    assert result["answer"] == first["answer"] and result["citations"] == first["citations"]
    assert len([c for c in chunks if "answer" in c]) >= 2
    assert chunks[-1]["citations"] == second["citations"]


def test_invented_citation_is_listed_as_unmatched(store, encoder, server):
    out = build_langchain_chain(chat(server, INVENTOR), store=store, embedder=encoder, k=3).invoke(COMPOST)
    assert out["answer"].endswith("[garden.pdf p.2] See also [made-up.pdf p.9].")
    assert out["unmatched_citations"] == ["[made-up.pdf p.9]"]
    assert [(Path(c["source"]).name, c["page"]) for c in out["citations"]] == [("garden.pdf", 2)]


def test_plain_llm_gets_the_prompt_as_one_string(store, encoder, server):
    with pytest.warns(UserWarning, match="images=True"):
        chain = build_langchain_chain(
            OllamaLLM(model=TEXT, base_url=server.url), store=store, embedder=encoder, k=3, images=True
        )
    out = chain.invoke(COMPOST)
    assert out["answer"] == "Compost improves soil structure. [garden.pdf p.2]"
    assert out["citations"][0]["page"] == 2
    [request] = server.generations
    assert request["prompt"].startswith(SYSTEM_PROMPT + "\n\nPage [")
    assert request["prompt"].endswith(f"Question: {COMPOST}\nAnswer:")
    assert not request.get("images") and server.chats == []


def test_tracing_names_the_chain_and_its_steps(store, encoder, server):
    chain = build_langchain_chain(chat(server), store=store, embedder=encoder, k=2)
    with collect_runs() as runs:
        chain.invoke(COMPOST)
    [root] = runs.traced_runs
    assert root.name == "pagesight"
    names = set()
    stack = [root]
    while stack:
        run = stack.pop()
        names.add(run.name)
        stack.extend(run.child_runs)
    assert {"retrieve_pages", "page_prompt", "ChatOllama", "cite_pages"} <= names


# -- rerankers ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nanoranker() -> Any:
    from pagesight.models.rerank import Reranker

    return Reranker("nanoranker").load()


@pytest.mark.filterwarnings("ignore:nanoranker is a text-only reranker")
def test_vlreranker_and_reranker_name_order_pages_by_the_rerankers_scores(store, encoder, server, nanoranker):
    candidates = PageSearcher(store, encoder).search(FIREWALL, k=5)
    expected = nanoranker.score(FIREWALL, [h.text for h in candidates])
    order = np.argsort(-expected, kind="stable")[:2]
    want = [(candidates[i].id, float(expected[i])) for i in order]

    compressor = VLReranker(model="nanoranker", top_n=5)
    out = build_langchain_chain(
        chat(server), store=store, embedder=encoder, reranker=compressor, k=2, rerank_candidates=5
    ).invoke(FIREWALL)
    got = _ids_scores(out["retrieved"])
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)
    assert [d.metadata["relevance_score"] for d in out["retrieved"]] == [s for _, s in got]
    assert out["citations"][0]["score"] == got[0][1]  # the cited page carries the reranker's score

    named = build_langchain_chain(
        chat(server), store=store, embedder=encoder, reranker="nanoranker", k=2, rerank_candidates=5
    ).invoke(FIREWALL)
    assert [i for i, _ in _ids_scores(named["retrieved"])] == [i for i, _ in want]
    np.testing.assert_allclose(
        [s for _, s in _ids_scores(named["retrieved"])], [s for _, s in want], rtol=1e-5
    )


# -- retrievers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def late(tmp_path_factory: pytest.TempPathFactory, docs: dict[str, Path]) -> Iterator[tuple[Any, Any, Path]]:
    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.retrieval.multivector import MultiVectorStore

    encoder = ColEmbedEncoder("minilm-tokens", device="cpu")
    folder = tmp_path_factory.mktemp("chain-late") / "store"
    store = MultiVectorStore(folder)
    assert ingest(list(docs.values()), store, encoder, show_progress=False).ok
    yield store, encoder, folder
    store.close()


@pytest.mark.filterwarnings("ignore:nanoranker is a text-only reranker")
def test_late_interaction_retriever_pages_reach_the_model(late, server, nanoranker):
    store, encoder, folder = late
    retriever = LateInteractionRetriever(store=store, encoder=encoder, k=3)
    out = build_langchain_chain(chat(server), retriever=retriever, k=3).invoke(FIREWALL)

    direct = retriever.invoke(FIREWALL)
    assert _ids_scores(out["retrieved"]) == _ids_scores(direct)  # MaxSim order and scores, untouched
    assert out["answer"].endswith("[network.pdf p.2]") and out["citations"][0]["page"] == 2
    assert Path(out["citations"][0]["image"]).is_file()

    # the store given as a folder, with the embedder it records (minilm-tokens): the same MaxSim pages
    by_folder = build_langchain_chain(chat(server), store=str(folder), mode="dense", k=3).invoke(FIREWALL)
    got, want = _ids_scores(by_folder["retrieved"]), _ids_scores(direct)
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5)

    # a pagesight reranker over what the retriever returns: the reranker's top k, with its scores
    wide = LateInteractionRetriever(store=store, encoder=encoder, k=5)
    pool = wide.invoke(FIREWALL)
    expected = nanoranker.score(FIREWALL, [d.page_content for d in pool])
    order = np.argsort(-expected, kind="stable")[:2]
    ranked = build_langchain_chain(chat(server), retriever=wide, reranker=nanoranker, k=2).invoke(FIREWALL)
    assert [d.id for d in ranked["retrieved"]] == [pool[i].id for i in order]
    np.testing.assert_allclose([d.metadata["score"] for d in ranked["retrieved"]], expected[order], rtol=1e-5)


def test_foreign_documents_from_any_retriever_are_cited_by_their_metadata(server):
    vectors = InMemoryVectorStore(MatryoshkaEmbeddings())
    vectors.add_documents(
        [
            # PyPDFLoader's shape: 0-based "page" and the printed "page_label"
            Document(
                "Invoice 42: the total amount due is 1,250 euros.",
                metadata={"source": "/data/invoice.pdf", "page": 1, "page_label": "2"},
            ),
            # a 0-based loader whose printed label is not a number: page 4 is the fifth page
            Document(
                "The night train to Vienna leaves from platform nine at half past seven.",
                metadata={"source": "/data/trains.pdf", "page": 4, "page_label": "iv"},
            ),
            Document(
                "Heavy snow is expected in the mountains over the weekend.", metadata={"note": "no source"}
            ),
        ]
    )
    chain = build_langchain_chain(chat(server), retriever=vectors.as_retriever(search_kwargs={"k": 3}), k=3)
    out = chain.invoke("what is the total amount due on invoice 42?")

    assert out["answer"] == "Invoice 42: the total amount due is 1,250 euros. [invoice.pdf p.2]"
    [cited] = out["citations"]
    assert (cited["source"], cited["page"], cited["image"]) == ("/data/invoice.pdf", 2, None)
    assert cited["score"] == 0.0  # the retriever gives no score
    by_source = {d.metadata["source"]: d.metadata for d in out["retrieved"]}
    assert out["retrieved"][0].metadata["source"] == "/data/invoice.pdf"  # the retriever's order
    assert by_source["/data/invoice.pdf"]["page_label"] == "2"  # original keys kept beside pagesight's
    assert (by_source["/data/trains.pdf"]["page"], by_source["document"]["page"]) == (5, 1)
    assert by_source["document"]["note"] == "no source"
    user = server.chats[-1]["messages"][1]["content"]
    assert "Page [trains.pdf p.5 (printed iv)]:" in user and "Page [document p.1]:" in user

    train = chain.invoke("when does the night train to Vienna leave?")
    assert train["answer"].endswith("[trains.pdf p.5 (printed iv)]")
    assert [(c["source"], c["page"]) for c in train["citations"]] == [("/data/trains.pdf", 5)]


@pytest.mark.parametrize(
    ("metadata", "page"),
    [
        ({"page": 3}, 3),  # pagesight's own: 1-based
        ({"page": 0, "page_label": "1"}, 1),  # PyPDFLoader: the printed label wins
        ({"page": 4, "page_label": "iv"}, 5),  # a loader counting from 0 with a roman label
        ({"page_label": "7"}, 7),  # LlamaIndex's PDF readers
        ({"page": "2"}, 2),
        ({}, 1),
    ],
)
def test_page_numbers_of_foreign_documents(metadata, page):
    assert page_number(metadata) == page


def test_relative_image_paths_resolve_against_the_store(tmp_path):
    hit = page_hit("t", {"source": "a.pdf", "page": 2, "image": "ab/c-p2.png"}, root=tmp_path / "images")
    assert hit.image == tmp_path / "images" / "ab" / "c-p2.png" and hit.id == "a.pdf#p2"
    assert page_hit("t", {"image": "/abs/p.png", "score": 0.5}, root=tmp_path).image == Path("/abs/p.png")


# -- bad arguments ------------------------------------------------------------------------------------


def test_bad_arguments_raise_configuration_errors(store, encoder, server, tmp_path):
    llm = chat(server)
    with pytest.raises(ConfigurationError, match="store=.*retriever="):
        build_langchain_chain(llm)
    with pytest.raises(ConfigurationError, match="no store at"):
        build_langchain_chain(llm, store=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="`k` must be"):
        build_langchain_chain(llm, store=store, k=0)
    with pytest.raises(ConfigurationError, match="`max_pixels` must be"):
        build_langchain_chain(llm, store=store, max_pixels=0)
    with pytest.raises(ConfigurationError, match="`mode`"):
        build_langchain_chain(llm, store=store, mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="BaseRetriever"):
        build_langchain_chain(llm, retriever=store)
    with pytest.raises(ConfigurationError, match="`llm` must be"):
        build_langchain_chain("llama3.2", store=store)
    with pytest.raises(ConfigurationError, match="`embedder`.*retriever="):
        build_langchain_chain(llm, store=store, embedder=object())
    with pytest.raises(ConfigurationError, match="`reranker` must be"):
        build_langchain_chain(llm, store=store, reranker=42)
    with pytest.warns(UserWarning, match="`embedder` is ignored"):
        build_langchain_chain(
            llm, retriever=InMemoryVectorStore(MatryoshkaEmbeddings()).as_retriever(), embedder=encoder
        )
    chain = build_langchain_chain(llm, store=store, embedder=encoder)
    with pytest.raises(ConfigurationError, match="question"):
        chain.invoke({"query": COMPOST})
    assert server.chats == []

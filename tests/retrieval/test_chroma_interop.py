"""Chroma interop (issue 16 item 5): stock Chroma tools beside a PageStore in one process, and
collections langchain-chroma or LlamaIndex wrote opened read-only, or refused naming what differs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pagesight.errors import StoreError, StoreMismatchError, StoreNotFoundError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store.interop import open_chroma_collection

TOPICS = {
    "garden.pdf": "Turn the compost heap every two weeks and keep it as damp as a wrung-out sponge.",
    "network.pdf": "Open port 22 in the firewall so that ssh connections reach the server.",
    "r.pdf": "Use read.fwf to read fixed-width formatted files into a data frame in R.",
}

_SAME_PROCESS = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path
    import numpy as np
    from langchain_chroma import Chroma
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from pagesight.documents.page import Page
    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.store import PageStore
    info = EmbedderInfo(model="toy", revision=None, dimensions=4, kind="dense-text")
    page = Page("a.pdf", 1, "ssh port forwarding", None, 0, 0, "ab" * 32)
    out = {}
    for order in ("pagesight-first", "langchain-first"):
        folder = str(Path(sys.argv[1]) / order)
        def pagesight():
            store = PageStore(folder)
            store.add_source([page], np.ones((1, 4), dtype=np.float32), embedder=info)
            return store.bm25_index().search("ssh", 1)[0][0] == page.id and store.count() == 1
        def langchain():
            lc = Chroma(persist_directory=folder, collection_name="langchain",
                        embedding_function=DeterministicFakeEmbedding(size=8))
            lc.add_texts(["compost heap"], metadatas=[{"source": "g.pdf"}])
            return lc.similarity_search("compost heap", k=1)[0].page_content == "compost heap"
        try:
            first, second = (pagesight, langchain) if order == "pagesight-first" else (langchain, pagesight)
            out[order] = [first(), second()]
        except Exception as e:
            out[order] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
    """
)


def test_stock_langchain_chroma_and_a_page_store_share_a_folder_in_one_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANONYMIZED_TELEMETRY"}  # as a user's shell has it
    run = subprocess.run(
        [sys.executable, "-c", _SAME_PROCESS, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"pagesight-first": [True, True], "langchain-first": [True, True]}


def test_client_settings_are_passed_through(tmp_path: Path) -> None:
    from chromadb.config import Settings

    from pagesight.retrieval.store import PageStore

    given = Settings(anonymized_telemetry=False, allow_reset=True)
    store = PageStore(tmp_path / "store", client_settings=given)
    try:
        assert store.count() == 0
        assert store.backend.client.get_settings().allow_reset is True  # type: ignore[attr-defined]
    finally:
        store.close()


def _langchain_collection(folder: Path, **options: object) -> None:
    from langchain_chroma import Chroma

    from pagesight.integrations import MatryoshkaEmbeddings

    lc = Chroma(
        persist_directory=str(folder),
        collection_name="langchain",
        embedding_function=MatryoshkaEmbeddings(),
        **options,
    )
    lc.add_texts(list(TOPICS.values()), metadatas=[{"source": s, "page": 0} for s in TOPICS])


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_a_langchain_collection_opens_read_only_and_searches_as_cosine(
    tmp_path: Path, encoder, space
) -> None:
    options = {} if space == "l2" else {"collection_configuration": {"hnsw": {"space": "cosine"}}}
    _langchain_collection(tmp_path / "lc", **options)
    store = open_chroma_collection(tmp_path / "lc", "langchain", embedder=encoder)
    try:
        assert store.backend.space == space  # type: ignore[attr-defined]
        query = encoder.encode_queries(["how often should I turn my compost"])[0]
        hits = store.search(query, k=3, embedder=encoder.info)
        assert [h.source for h in hits][0] == "garden.pdf"
        stored = encoder.encode_documents([hits[0].text])[0]
        assert hits[0].score == pytest.approx(float(np.dot(query, stored)), abs=2e-3)  # a cosine again
        from pagesight import Index

        index = Index.open(store, encoder=encoder)
        assert index.search("read.fwf fixed width", k=1, mode="bm25")[0].source == "r.pdf"
        assert index.search("ssh firewall port", k=1)[0].source == "network.pdf"  # hybrid
        with pytest.raises(StoreError, match="read-only"):
            store.delete_source("garden.pdf")
        assert store.count() == 3
        assert not (tmp_path / "lc" / "bm25").exists()  # nothing written into the other tool's folder
    finally:
        store.close()


def test_a_llamaindex_collection_opens_read_only(tmp_path: Path, encoder) -> None:
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from pagesight.integrations import MatryoshkaEmbedding

    client = chromadb.PersistentClient(path=str(tmp_path / "li"))
    vector_store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("llama"))
    docs = [Document(text=t, metadata={"file_path": s}) for s, t in TOPICS.items()]
    VectorStoreIndex.from_documents(
        docs,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=MatryoshkaEmbedding(),
    )
    store = open_chroma_collection(tmp_path / "li", "llama", embedder=encoder)
    try:
        query = encoder.encode_queries(["open the ssh port in the firewall"])[0]
        assert store.search(query, k=1, embedder=encoder.info)[0].source == "network.pdf"
    finally:
        store.close()


def test_refused_with_what_differs(tmp_path: Path, encoder) -> None:
    _langchain_collection(tmp_path / "lc")
    other = EmbedderInfo(model="nomic-embed-text-v1.5", revision=None, dimensions=768, kind="dense-text")
    with pytest.raises(StoreMismatchError, match=r"384-dimensional.*makes 768"):
        open_chroma_collection(tmp_path / "lc", "langchain", embedder=other)
    with pytest.raises(StoreNotFoundError, match=r"no collection named 'nope'.*langchain"):
        open_chroma_collection(tmp_path / "lc", "nope", embedder=encoder)

    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path / "raw"))
    col = client.get_or_create_collection("raw")  # l2, vectors not normalized
    col.add(ids=["a", "b"], embeddings=[[3.0] * 384, [0.5] * 384], documents=["x", "y"])
    with pytest.raises(StoreMismatchError, match=r"l2 distance and holds vectors of length"):
        open_chroma_collection(tmp_path / "raw", "raw", embedder=encoder)

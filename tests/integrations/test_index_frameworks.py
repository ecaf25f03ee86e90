"""Index.as_chain / as_query_engine / as_*_retriever: one call from an opened index, run offline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("chromadb")

from pagesight import Index  # noqa: E402
from pagesight.errors import ConfigurationError  # noqa: E402
from tests.integrations.page_index import COMPOST, FIREWALL  # noqa: E402


@pytest.fixture(scope="module")
def index(page_store: Path) -> Iterator[Index]:
    with Index.open(page_store) as opened:
        yield opened


def test_as_chain_answers_with_a_fake_llm_and_cites_the_retrieved_pages(index: Index) -> None:
    from langchain_core.language_models import FakeListLLM

    answer = "Allow SSH with an nftables rule. [network.pdf p.2]"
    chain = index.as_chain(FakeListLLM(responses=[answer]), k=2)
    out = chain.invoke(FIREWALL)
    assert out["answer"] == answer
    assert [(Path(c["source"]).name, c["page"]) for c in out["citations"]] == [("network.pdf", 2)]
    assert out["unmatched_citations"] == []
    hits = index.search(FIREWALL, k=2)
    assert [d.id for d in out["retrieved"]] == [h.id for h in hits]  # the index's own ranking


async def test_as_chain_async_and_with_options(index: Index) -> None:
    from langchain_core.language_models import FakeListLLM

    llm = FakeListLLM(responses=["Turn it every two weeks. [garden.pdf p.2]"])
    out = await index.as_chain(llm, k=1, mode="bm25").ainvoke({"question": COMPOST})
    [page] = out["retrieved"]
    assert (Path(page.metadata["source"]).name, page.metadata["page"]) == ("garden.pdf", 2)
    assert out["citations"][0]["page"] == 2


def test_as_query_engine_answers_with_mock_llm(index: Index) -> None:
    from llama_index.core.llms import MockLLM

    engine = index.as_query_engine(MockLLM(), k=2)
    response = engine.query(FIREWALL)
    assert [n.node.node_id for n in response.source_nodes] == [h.id for h in index.search(FIREWALL, k=2)]
    assert "nftables" in str(response)  # MockLLM echoes the prompt: the page text reached it
    cited = [(Path(c["source"]).name, c["page"]) for c in response.metadata["citations"]]
    assert ("network.pdf", 2) in cited  # the echoed page labels are cited pages


def test_as_chain_refuses_what_is_not_a_langchain_model(index: Index) -> None:
    with pytest.raises(ConfigurationError, match="`llm` must be"):
        index.as_chain("llama3.2")


def test_a_missing_framework_names_its_pip_extra(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["langchain_core"] = None      # as if langchain-core were not installed
        sys.modules["llama_index"] = None
        sys.modules["llama_index.core"] = None
        from pagesight import Index
        index = Index.open({str(tmp_path)!r})
        for call in (index.as_langchain_retriever, index.as_llamaindex_retriever):
            try:
                call()
            except ImportError as e:
                print(e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "pagesight[langchain]"' in out and 'pip install "pagesight[llamaindex]"' in out

"""``pagesight.Index``: create, add, search, ask, sources, delete and reopen, with the real MiniLM model.

What the front door returns must be what the CLI prints for the same store (the CLI calls it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagesight import Hit, Index
from pagesight.cli import main
from pagesight.errors import ConfigurationError, EmptyStoreError, StoreMismatchError, StoreNotFoundError
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

FIREWALL = "nftables rule to allow ssh"
TOMATOES = "Why should tomato plants be staked?"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def ranked(hits: list[Hit]) -> list[tuple[str, int, float]]:
    return [(h.source, h.page, round(float(h.score), 6)) for h in hits]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    return {
        "garden": write_pdf(folder / "garden.pdf", GARDEN),
        "network": write_pdf(folder / "network.pdf", NETWORK),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, docs: dict[str, Path]) -> Iterator[Path]:
    """A store of both documents, written through ``Index.create`` with the offline profile."""
    location = tmp_path_factory.mktemp("index") / "store"
    with Index.create(location, profile="offline") as index:
        assert not location.exists()  # constructing opened nothing
        report = index.add([docs["garden"].parent], show_progress=False)
        assert report.ok and report.pages_indexed == 5, report.summary()
        assert index.profile is not None and index.profile.name == "offline"
        assert index.profile_reason == "profile 'offline' as requested"
    yield location


def test_search_and_ask_return_what_the_cli_prints(built, docs, capsys):
    with Index.open(built) as index:
        hits = index.search(FIREWALL, k=3)
        assert (Path(hits[0].source).name, hits[0].page) == ("network.pdf", 2)
        printed = json.loads(cli(capsys, "search", FIREWALL, "--store", str(built), "-k", "3", "--json"))
        assert ranked(hits) == [(h["source"], h["page"], h["score"]) for h in printed]
        for mode in ("dense", "bm25"):
            by_mode = index.search(FIREWALL, k=2, mode=mode)
            shown = cli(
                capsys, "search", FIREWALL, "--store", str(built), "-k", "2", "--mode", mode, "--json"
            )
            assert ranked(by_mode) == [(h["source"], h["page"], h["score"]) for h in json.loads(shown)]
        result = index.ask(TOMATOES)
        assert "[garden.pdf p.1]" in result.text.splitlines()[0]
        assert result.to_dict() == json.loads(cli(capsys, "ask", TOMATOES, "--store", str(built), "--json"))
        streamed: list[str] = []
        assert index.ask(TOMATOES, "extractive", on_token=streamed.append).text == "".join(streamed)


def test_sources_embedder_and_check_through_a_reopened_index(built, docs, capsys):
    index = Index.open(built)
    assert [(s.source, s.pages) for s in index.sources()] == [
        (str(docs["garden"]), 2),
        (str(docs["network"]), 3),
    ]
    printed = json.loads(cli(capsys, "sources", "--store", str(built), "--json"))
    assert printed == [{"source": s.source, "pages": s.pages} for s in index.sources()]
    assert index.embedder is not None and index.embedder.kind == "dense-text"
    assert index.encoder.info == index.embedder  # the recorded embedder picked the encoder
    assert index.check().ok and not index.holds_tokens()
    assert index.location == str(built) and repr(index) == f"Index({str(built)!r})"
    index.close()
    assert len(index.sources()) == 2  # a closed index opens its store again on use


def test_the_searcher_is_built_once_and_sees_pages_added_and_deleted(tmp_path, docs, encoder):
    location = tmp_path / "store"
    index = Index.open(location, encoder=encoder, must_exist=False)
    assert index.add(docs["garden"], show_progress=False).ok  # one source, not a list
    searcher = index.searcher("bm25")
    assert index.searcher("bm25") is searcher
    assert index.search(FIREWALL, k=5, mode="bm25") == []  # no word of it in garden.pdf
    index.add([docs["network"]], show_progress=False)
    assert index.searcher("bm25") is searcher
    assert Path(index.search(FIREWALL, k=1, mode="bm25")[0].source).name == "network.pdf"  # BM25 refreshed
    assert index.delete(docs["network"]) == 3
    assert index.delete(docs["network"]) == 0
    assert index.search(FIREWALL, k=5, mode="bm25") == []  # BM25 forgot the deleted pages
    assert [s.source for s in index.sources()] == [str(docs["garden"])]


def test_a_late_interaction_store_opens_with_its_token_encoder(tmp_path, docs, capsys):
    location = tmp_path / "late"
    with Index.create(location, profile="offline-late", storage="int8") as index:
        assert index.add([docs["garden"].parent], show_progress=False).ok
    with Index.open(location) as index:
        assert index.embedder is not None and index.embedder.kind == "late-interaction"
        assert index.holds_tokens() and index.check().ok
        hits = index.search(FIREWALL, k=2)
        assert (Path(hits[0].source).name, hits[0].page) == ("network.pdf", 2)
        printed = json.loads(cli(capsys, "search", FIREWALL, "--store", str(location), "-k", "2", "--json"))
        assert ranked(hits) == [(h["source"], h["page"], h["score"]) for h in printed]
        exact = index.search(FIREWALL, k=2, mode="dense", exhaustive=True)
        assert (Path(exact[0].source).name, exact[0].page) == ("network.pdf", 2)


def test_a_late_interaction_store_with_centroid_candidates_from_index_and_cli(
    tmp_path, docs, capsys, monkeypatch
):
    from pagesight.retrieval.store import MultiVectorStore
    from pagesight.retrieval.store.centroids import CentroidIndex

    monkeypatch.setattr(MultiVectorStore, "centroid_min_pages", 2)  # the test's pages train centroids
    location = tmp_path / "late-centroids"
    with Index.create(location, profile="offline-late", candidates_from="centroids") as index:
        assert index.add([docs["garden"].parent], show_progress=False).ok
    index_folder = location / "tokens" / "centroids"
    assert CentroidIndex(index_folder).stats().coded_pages == index.store.count() > 0
    with Index.open(location) as index:
        assert index.store.options["candidates_from"] == "centroids"  # recorded by the store
        hits = index.search(FIREWALL, k=2, mode="dense")
        exact = index.search(FIREWALL, k=2, mode="dense", exhaustive=True)
        assert ranked(hits) == ranked(exact) and (Path(hits[0].source).name, hits[0].page) == (
            "network.pdf",
            2,
        )
    printed = json.loads(
        cli(capsys, "search", FIREWALL, "--store", str(location), "-k", "2", "--mode", "dense", "--json")
    )
    assert [(h["source"], h["page"]) for h in printed] == [(h.source, h.page) for h in hits]
    other = tmp_path / "late-cli"
    cli(
        capsys,
        "index",
        str(docs["garden"]),
        "--store",
        str(other),
        "--profile",
        "offline-late",
        "--candidates-from",
        "centroids",
        "--quiet",
    )
    with Index.open(other) as index:
        assert index.store.options["candidates_from"] == "centroids"
    assert (
        main(
            [
                "index",
                str(docs["garden"]),
                "--store",
                str(tmp_path / "d"),
                "--profile",
                "offline",
                "--candidates-from",
                "centroids",
            ]
        )
        == 2
    )
    assert "--candidates-from apply to late-interaction models" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="`candidates_from` apply to late-interaction"):
        Index.create("anywhere", profile="offline", candidates_from="centroids")


def test_opening_a_missing_store_says_how_to_create_one(tmp_path):
    with pytest.raises(StoreNotFoundError, match="no store at .*pagesight index") as info:
        Index.open(tmp_path / "none")
    assert isinstance(info.value, ConfigurationError)  # the CLI's usage error (exit 2)
    assert not (tmp_path / "none").exists()


def test_an_empty_store_refuses_search_and_add_until_created(tmp_path, docs):
    index = Index.open(tmp_path / "empty", must_exist=False)
    with pytest.raises(EmptyStoreError, match="is empty; index documents first"):
        index.search("tomatoes")
    with pytest.raises(EmptyStoreError, match=r"Index\.create"):
        index.add([docs["garden"]])
    assert index.search("tomatoes", mode="bm25") == []  # BM25 needs no encoder and finds nothing
    index.close()


def test_create_refuses_options_of_another_kind_and_writing_with_another_model(built, docs):
    with pytest.raises(ConfigurationError, match="`pool_factor`.*late-interaction"):
        Index.create("anywhere", profile="offline", pool_factor=2)
    with pytest.raises(ConfigurationError, match="`dimensions` applies to dense"):
        Index.create("anywhere", profile="offline-late", dimensions=64)
    with pytest.raises(ConfigurationError, match="`page_input` applies"):
        Index.create("anywhere", profile="offline", page_input="image")
    with pytest.raises(ConfigurationError, match="unknown profile 'fast'"):
        Index.create("anywhere", profile="fast")
    with pytest.raises(ConfigurationError, match="unknown embedder kind"):
        Index.create("anywhere", kind="sparse")  # type: ignore[arg-type]
    with pytest.raises(StoreMismatchError, match="384"):
        Index.create(built, profile="offline", dimensions=64).add([docs["garden"]], force=True)
    with pytest.raises(ConfigurationError, match="`mode` must be one of"):
        Index.open(built).search("x", mode="sparse")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`reranker` must be"):
        Index.open(built).search("x", reranker=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown generator 'gpt-4'"):
        Index.open(built).ask("x", generator="gpt-4")

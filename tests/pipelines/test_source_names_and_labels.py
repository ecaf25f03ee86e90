"""Issue 15 items 5, 7 and 10 end to end with the real MiniLM model and an embedded Chroma store.

- item 5: printed page labels are stored, cited as ``[book.pdf p.3 (printed 1)]``, printed by
  ``pagesight search``, carried in framework metadata, and absent (``None``) in stores without them;
- item 7: ``./docs/x.pdf``, ``docs/x.pdf`` and the absolute path are one source; ``delete`` takes
  any spelling; a store an older pagesight wrote (names as typed) still matches;
- item 10: ``pagesight eval`` warns when the relevant pages are not indexed, wholly or partly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pagesight import Index
from pagesight.cli import main
from pagesight.documents import load_pdf
from pagesight.pipelines.answer import citation_label, parse_citations, resolve_citations
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.pipelines.conftest import GARDEN, write_pdf

pytest.importorskip("chromadb", reason="the chroma extra is not installed")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def labelled_pdf(path: Path) -> Path:
    """Four pages printed i, ii, 1, 2: a preface, then the body numbered from 1."""
    import pymupdf

    texts = [
        "Preface: how this small handbook on harbours came to be written.",
        "Contents and a list of the ferries described in the handbook.",
        "Tides rise twice a day; the harbour master posts the times at the pier.",
        "Ferries to the island leave every hour from the north quay in summer.",
    ]
    doc = pymupdf.open()
    for text in texts:
        doc.new_page(width=400, height=500).insert_textbox(pymupdf.Rect(30, 30, 370, 470), text, fontsize=11)
    doc.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
        ]
    )
    doc.save(str(path))
    doc.close()
    return path


# --------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("renderer", ["pymupdf", "pdfium"])
def test_page_labels_are_stored_and_cited(tmp_path: Path, encoder: Any, renderer: str) -> None:
    book = labelled_pdf(tmp_path / "book.pdf")
    store = PageStore(tmp_path / "store")
    assert ingest([book], store, encoder, show_progress=False, renderer=renderer).ok
    assert [(h.page, h.page_label) for h in store.pages()] == [(1, "i"), (2, "ii"), (3, "1"), (4, "2")]

    with Index(store, encoder=encoder) as index:
        hits = index.search("when do the tides rise at the harbour", k=1, mode="dense")
        assert (hits[0].page, hits[0].page_label) == (3, "1")
        label = citation_label(hits[0])
        assert label == "[book.pdf p.3 (printed 1)]"
        assert parse_citations(f"The harbour master posts them {label}.") == [("book.pdf", 3)]
        answer = index.ask("when do the tides rise at the harbour", k=2)
    assert "[book.pdf p.3 (printed 1)]" in answer.text  # the extractive answer cites the printed label
    assert (answer.citations[0].page, answer.citations[0].page_label) == (3, "1")
    again = resolve_citations("q", "as [book.pdf p.3 (printed 1)] says", answer.retrieved)
    assert [(c.page, c.page_label) for c in again.citations] == [(3, "1")] and again.unmatched_citations == []
    store.close()


def test_a_store_without_labels_reads_none_and_cites_the_index(tmp_path: Path, encoder: Any) -> None:
    doc = write_pdf(tmp_path / "garden.pdf", GARDEN)
    store = PageStore(tmp_path / "store")
    assert ingest([doc], store, encoder, show_progress=False).ok
    rows = store.backend.get([h.id for h in store.pages()], include=["metadatas"])
    assert all("page_label" not in meta for _, _, meta in rows)  # what every older store holds
    hit = store.pages()[1]
    assert hit.page_label is None and citation_label(hit) == "[garden.pdf p.2]"
    store.close()


def test_framework_metadata_carries_the_label_and_keeps_the_index(tmp_path: Path, encoder: Any) -> None:
    from pagesight.integrations._convert import hit_metadata, page_hit

    store = PageStore(tmp_path / "store")
    assert ingest([labelled_pdf(tmp_path / "book.pdf")], store, encoder, show_progress=False).ok
    hit = store.pages()[2]
    metadata = hit_metadata(hit)
    assert (metadata["page"], metadata["page_label"]) == (3, "1")
    # read back as a foreign document would be (a LangChain retriever's output): page 3, not 1
    back = page_hit(hit.text, metadata)
    assert (back.page, back.page_label) == (3, "1")
    store.close()


def test_search_prints_the_printed_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = labelled_pdf(tmp_path / "book.pdf")
    store = str(tmp_path / "store")
    code, _, err = run(capsys, "index", str(book), "--store", store, "-q", "--ocr", "never")
    assert code == 0, err
    code, out, _ = run(capsys, "search", "ferries leave from the north quay", "--store", store, "-k", "1")
    assert code == 0 and f"{book} p.4 (printed 2)" in out
    code, out, _ = run(capsys, "search", "ferries leave from the north quay", "--store", store, "--json")
    assert code == 0 and (json.loads(out)[0]["page"], json.loads(out)[0]["page_label"]) == (4, "2")

    # item 10 here too, on the same store: relevant pages that are not indexed are named
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"qid": "1", "query": "ferries", "relevant": ["fhs-3.0.pdf#19"]}) + "\n")
    code, out, err = run(capsys, "eval", "--store", store, "--queries", str(queries))
    assert code == 0 and "0.0000" in out
    assert "warning: none of the 1 relevant pages the queries name are indexed" in err
    assert "the queries expect fhs-3.0.pdf, the store holds book.pdf" in err
    mixed = [
        {"qid": "1", "query": "ferries north quay", "relevant": ["book.pdf#4"]},
        {"qid": "2", "query": "tides", "relevant": ["book.pdf#3", "book.pdf#9", "other.pdf#2"]},
    ]
    queries.write_text("\n".join(json.dumps(q) for q in mixed) + "\n")
    code, out, err = run(capsys, "eval", "--store", store, "--queries", str(queries), "--json")
    assert code == 0 and json.loads(out)["MRR@10"] > 0
    assert "warning: 2 of the 4 relevant pages the queries name are not indexed" in err
    assert "(book.pdf (1), other.pdf (1))" in err
    queries.write_text(json.dumps(mixed[0]) + "\n")
    code, _, err = run(capsys, "eval", "--store", store, "--queries", str(queries))
    assert code == 0 and "warning" not in err


# --------------------------------------------------------------------------- item 7


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the current folder, with ``docs/x.pdf`` in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    write_pdf(tmp_path / "docs" / "x.pdf", GARDEN)
    return tmp_path


def test_every_spelling_of_a_path_is_one_source(folder: Path, encoder: Any, monkeypatch) -> None:
    absolute = str(folder / "docs" / "x.pdf")
    store = PageStore(folder / "store")
    [first] = ingest(["./docs/x.pdf"], store, encoder, show_progress=False).results
    assert (first.source, first.status, first.pages) == (absolute, "indexed", 2)
    for spelling in ("docs/x.pdf", "docs//x.pdf", "docs/../docs/x.pdf", absolute):
        [again] = ingest([spelling], store, encoder, show_progress=False).results
        assert (again.source, again.status, again.warnings) == (absolute, "unchanged", ()), spelling
    monkeypatch.chdir(folder / "docs")  # another current folder, the same file
    [other] = ingest(["x.pdf"], store, encoder, show_progress=False).results
    assert (other.status, other.warnings) == ("unchanged", ())
    assert [(s.source, s.pages) for s in store.sources()] == [(absolute, 2)]
    assert all(h.source == absolute for h in store.pages())
    store.close()


def test_delete_takes_any_spelling(folder: Path, encoder: Any) -> None:
    store = PageStore(folder / "store")
    assert ingest(["docs/x.pdf"], store, encoder, show_progress=False).ok
    with Index(store, encoder=encoder) as index:
        assert index.delete("docs/missing.pdf") == 0
        assert index.delete(str(folder / "docs" / "x.pdf")) == 2
        assert index.sources() == []
        assert ingest(["docs/x.pdf"], store, encoder, show_progress=False).ok
        assert index.delete("./docs/x.pdf") == 2 and store.count() == 0
    store.close()


def _old_store(folder: Path, encoder: Any, name: str) -> PageStore:
    """A store as pagesight wrote it before names were made absolute: the path as typed."""
    store = PageStore(folder / "store")
    pages = list(load_pdf(name, source=name, image_dir=folder / "staging", ocr="never"))
    store.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
    assert [s.source for s in store.sources()] == [name]
    return store


def test_an_old_store_with_typed_names_still_matches(folder: Path, encoder: Any) -> None:
    store = _old_store(folder, encoder, "docs/x.pdf")
    absolute = str(folder / "docs" / "x.pdf")
    [same] = ingest(["./docs/x.pdf"], store, encoder, show_progress=False).results
    assert (same.source, same.status, same.pages, same.warnings) == (absolute, "unchanged", 2, ())
    assert [s.source for s in store.sources()] == ["docs/x.pdf"]  # matched, not written twice

    # the file changes: written under the absolute name, and the old spelling's pages are removed
    write_pdf(folder / "docs" / "x.pdf", [*GARDEN, "A third page about mulching in autumn."])
    [changed] = ingest([absolute], store, encoder, show_progress=False).results
    assert (changed.status, changed.pages) == ("indexed", 3)
    assert [(s.source, s.pages) for s in store.sources()] == [(absolute, 3)]
    assert len(list((folder / "store" / "images").rglob("*.png"))) == 3  # the old version's images went too
    store.close()


def test_an_old_store_is_migrated_by_force_and_deleted_by_any_spelling(folder: Path, encoder: Any) -> None:
    store = _old_store(folder, encoder, "./docs/x.pdf")
    with Index(store, encoder=encoder) as index:
        assert index.stored_names(str(folder / "docs" / "x.pdf")) == ["./docs/x.pdf"]
        assert index.delete(str(folder / "docs" / "x.pdf")) == 2 and store.count() == 0
    store.close()

    store = PageStore(folder / "store2")
    pages = list(load_pdf("docs/x.pdf", source="docs/x.pdf", image_dir=folder / "staging2", ocr="never"))
    store.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
    [moved] = ingest(["docs/x.pdf"], store, encoder, show_progress=False, force=True).results
    assert moved.status == "indexed"
    assert [s.source for s in store.sources()] == [str(folder / "docs" / "x.pdf")]  # one source, renamed
    store.close()

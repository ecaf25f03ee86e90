from __future__ import annotations

from pathlib import Path

import pytest

from pagesight.errors import StoreMismatchError
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore

from .conftest import write_pdf


def test_ingest_folder_indexes_every_page_and_search_finds_the_right_one(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    report = ingest([corpus["garden"].parent], store, encoder, show_progress=False)
    assert report.ok, report.summary()
    assert {(s.source, s.pages) for s in store.sources()} == {
        (str(corpus["garden"]), 2),
        (str(corpus["network"]), 3),
    }
    hits = PageSearcher(store, encoder).search("open port 22 for ssh in the packet filter", k=3)
    assert (hits[0].source, hits[0].page) == (str(corpus["network"]), 2)
    assert hits[0].image is not None and Path(hits[0].image).is_file()


def test_image_only_page_is_indexed_with_a_warning(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    report = ingest([corpus["network"]], store, encoder, show_progress=False)
    (result,) = report.results
    assert result.status == "indexed" and result.pages == 3
    # one line per source, naming the page (issue 15 item 11: not one warning per page)
    assert [w for w in result.warnings if "no text layer" in w] == [
        f"{corpus['network']}: 1 page(s) have no text layer and OCR found no text on them (page 3); "
        "indexed as images only"
    ]
    assert [h.page for h in store.pages(str(corpus["network"]))] == [1, 2, 3]


def test_rerun_skips_unchanged_and_reindexes_changed_sources(tmp_path, corpus, encoder):
    store = PageStore(tmp_path / "store")
    ingest([corpus["garden"]], store, encoder, show_progress=False)
    again = ingest([corpus["garden"]], store, encoder, show_progress=False)
    assert [(r.status, r.pages) for r in again.results] == [("unchanged", 2)]

    write_pdf(corpus["garden"], ["Roses are pruned in early spring, just above an outward-facing bud."])
    changed = ingest([corpus["garden"]], store, encoder, show_progress=False)
    assert [(r.status, r.pages) for r in changed.results] == [("indexed", 1)]
    pages = store.pages(str(corpus["garden"]))
    assert len(pages) == 1 and "Roses" in pages[0].text
    assert store.count() == 1


def test_bad_source_fails_alone_and_leaves_nothing(tmp_path, corpus, encoder):
    bad = corpus["garden"].parent / "broken.pdf"
    bad.write_bytes(b"<html><body>502 Bad Gateway</body></html>")
    missing = tmp_path / "nope.pdf"
    store = PageStore(tmp_path / "store")
    report = ingest([corpus["garden"], bad, missing], store, encoder, show_progress=False)
    status = {Path(r.source).name: r.status for r in report.results}
    assert status == {"garden.pdf": "indexed", "broken.pdf": "failed", "nope.pdf": "failed"}
    assert not report.ok
    failed = {Path(r.source).name: r.error for r in report.failed}
    assert "broken.pdf" in failed["broken.pdf"] and "nope.pdf" in failed["nope.pdf"]
    assert [s.source for s in store.sources()] == [str(corpus["garden"])]
    assert "FAILED" in report.summary() and "broken.pdf" in report.summary()
    # no staging or stray images: only the two garden pages' images exist in the store
    images = sorted(p.name for p in (tmp_path / "store").rglob("*.png"))
    assert len(images) == 2


def test_other_embedder_is_refused(tmp_path, corpus, encoder):
    from pagesight.models.matryoshka import MatryoshkaEncoder

    store = PageStore(tmp_path / "store")
    ingest([corpus["garden"]], store, encoder, show_progress=False)
    smaller = MatryoshkaEncoder("all-minilm-l6-v2", dimensions=128)
    with pytest.raises(StoreMismatchError) as e:
        ingest([corpus["network"]], store, smaller, show_progress=False)
    assert "384" in str(e.value) and "128" in str(e.value)
    assert [s.source for s in store.sources()] == [str(corpus["garden"])]


def test_warnings_from_other_threads_and_libraries_are_not_a_sources_notes(tmp_path, corpus, encoder):
    """Only user-facing warnings become a source's notes; a library deprecation raised meanwhile
    (here by another thread, as a web server's would) is passed on, not attributed to the source."""
    import threading
    import warnings

    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.store import PageStore

    stop = threading.Event()

    def noisy() -> None:
        while not stop.is_set():
            warnings.warn("some_library.old_api is deprecated", DeprecationWarning, stacklevel=1)
            stop.wait(0.001)

    thread = threading.Thread(target=noisy, daemon=True)
    thread.start()
    try:
        report = ingest([corpus["garden"]], PageStore(tmp_path / "store"), encoder, show_progress=False)
    finally:
        stop.set()
        thread.join()
    (result,) = report.results
    assert result.status == "indexed"
    assert not any("deprecated" in w for w in result.warnings)

"""Each bad input fails alone, named, with nothing of it left in the store (issue 2, item 9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.documents.doc_factories import pdf_bytes, png_header_only
from tests.http_server import LoopbackHTTPServer, Route

from .conftest import write_pdf


def _truncated(tmp: Path) -> bytes:
    data = pdf_bytes(["first page text", "second page text", "third page text"])
    return data[: len(data) // 3]


BAD_FILES = {
    "empty.pdf": lambda tmp: b"",
    "gateway-error.pdf": lambda tmp: b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    "truncated.pdf": _truncated,
    "locked.pdf": lambda tmp: pdf_bytes(["secret"], encrypt=("user-pw", "owner-pw")),
    "bomb.png": lambda tmp: png_header_only(60_000, 60_000),
    "notes.docx": lambda tmp: b"PK\x03\x04 not supported",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_fails_alone_and_leaves_nothing(tmp_path, encoder, name):
    good = write_pdf(tmp_path / "good.pdf", ["A readable page about lighthouses and their keepers."])
    bad = tmp_path / name
    bad.write_bytes(BAD_FILES[name](tmp_path))
    store = PageStore(tmp_path / "store")
    report = ingest([good, bad], store, encoder, show_progress=False)
    (failed,) = report.failed
    assert failed.source == str(bad) and name in (failed.error or "")
    assert [s.source for s in store.sources()] == [str(good)]
    assert store.count() == 1
    assert len(list((tmp_path / "store").rglob("*.png"))) == 1
    assert not list((tmp_path / "store").glob(".staging-*"))


def test_missing_path_and_folder_as_pdf(tmp_path, encoder):
    folder = tmp_path / "looks-like.pdf"
    folder.mkdir()
    store = PageStore(tmp_path / "store")
    report = ingest([tmp_path / "absent.pdf"], store, encoder, show_progress=False)
    assert [r.status for r in report.results] == ["failed"] and "absent.pdf" in (
        report.results[0].error or ""
    )
    assert store.count() == 0


def test_wrong_password_is_reported(tmp_path, encoder):
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(pdf_bytes(["secret"], encrypt=("right", "owner")))
    store = PageStore(tmp_path / "store")
    report = ingest([locked], store, encoder, show_progress=False, password="wrong")
    assert "password" in (report.failed[0].error or "").lower()
    ok = ingest([locked], store, encoder, show_progress=False, password="right")
    assert ok.ok and store.count() == 1


@pytest.mark.enable_socket
def test_dead_urls_fail_alone(tmp_path, encoder):
    routes = {
        "/report.pdf": Route(
            body=pdf_bytes(["Quarterly report: revenue grew in the north region."]),
            content_type="application/pdf",
        ),
        "/gone.pdf": Route(body=b"not here", status=404, content_type="text/plain"),
        "/loop": Route(redirect="/loop"),
        "/fake.pdf": Route(body=b"<html>login required</html>", content_type="application/pdf"),
    }
    store = PageStore(tmp_path / "store")
    with LoopbackHTTPServer(routes) as server:
        urls = [server.url(p) for p in routes]
        report = ingest(urls, store, encoder, show_progress=False)
    status = {r.source.rsplit("/", 1)[-1]: r.status for r in report.results}
    assert status == {"report.pdf": "indexed", "gone.pdf": "failed", "loop": "failed", "fake.pdf": "failed"}
    assert "404" in next(r.error for r in report.failed if r.source.endswith("gone.pdf"))
    assert [s.source for s in store.sources()] == [urls[0]]


# -- issue 6: more of the bad-input corpus ----------------------------------------------------------


def _snapshot(store: PageStore, root: Path) -> tuple[list[str], list[tuple[str, int, str]], list[str]]:
    """Ids, sources and image files of a store: what a failed call must leave exactly as it was."""
    files = sorted(str(p.relative_to(root)) for p in (root / "images").rglob("*") if p.is_file())
    return store.ids(), [(s.source, s.pages, s.content_hash) for s in store.sources()], files


def test_truncated_pdf_that_mupdf_repairs_is_indexed_with_a_warning(tmp_path, encoder):
    data = pdf_bytes(["Harbour pilots board ships.", "Tugboats push the hull."])
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: data.rfind(b"endobj") + len(b"endobj")])  # xref and trailer lost
    store = PageStore(tmp_path / "store")
    report = ingest([cut], store, encoder, show_progress=False, renderer="pymupdf")
    (result,) = report.results
    assert result.status == "indexed" and result.pages == 2
    assert any("repaired" in w for w in result.warnings)
    assert [h.text for h in store.pages()] == [
        "Harbour pilots board ships.",
        "Tugboats push the hull.",
    ]


def test_owner_password_only_pdf_loads_without_a_password(tmp_path, encoder):
    owner_only = tmp_path / "owner-only.pdf"
    owner_only.write_bytes(pdf_bytes(["Printing restricted, reading allowed."], encrypt=("", "owner-pw")))
    store = PageStore(tmp_path / "store")
    for renderer in ("pymupdf", "pdfium"):
        report = ingest([owner_only], store, encoder, show_progress=False, renderer=renderer, force=True)
        assert report.ok, report.failed
    assert [h.text for h in store.pages()] == ["Printing restricted, reading allowed."]


def test_zero_page_pdf_fails_alone(tmp_path, encoder):
    from tests.documents.doc_factories import raw_pdf

    good = write_pdf(tmp_path / "good.pdf", ["Kept page."])
    zero = tmp_path / "zero.pdf"
    zero.write_bytes(raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]))
    store = PageStore(tmp_path / "store")
    for renderer in ("pymupdf", "pdfium"):
        report = ingest([good, zero], store, encoder, show_progress=False, renderer=renderer)
        (failed,) = report.failed
        assert failed.source == str(zero) and "no pages" in (failed.error or "")
    assert [s.source for s in store.sources()] == [str(good)] and store.count() == 1


def test_blank_and_image_only_pages_are_indexed_by_title(tmp_path, encoder):
    doc = write_pdf(tmp_path / "scan.pdf", ["Text page about tides.", "", None, "   "])
    store = PageStore(tmp_path / "store")
    (result,) = ingest([doc], store, encoder, show_progress=False).results
    assert result.status == "indexed" and result.pages == 4
    # one summary per kind (issue 15 item 11): pages 2 and 4 are blank, page 3 has a drawing
    assert [w for w in result.warnings if "blank" in w or "no text layer" in w] == [
        f"{doc}: 2 blank page(s) kept (pages 2, 4): no text and nothing drawn; they keep their page "
        "numbers and are not OCR'd",
        f"{doc}: 1 page(s) have no text layer and OCR found no text on them (page 3); indexed as images only",
    ]
    pages = store.pages()
    assert [p.text for p in pages] == ["Text page about tides.", "", "", ""]
    assert all(p.image is not None and p.image.is_file() for p in pages)


def test_blank_queries_and_an_over_long_query(tmp_path, encoder, corpus):
    from pagesight.retrieval.search import PageSearcher

    store = PageStore(tmp_path / "store")
    assert ingest(list(corpus.values()), store, encoder, show_progress=False).ok
    before = _snapshot(store, tmp_path / "store")
    searcher = PageSearcher(store, encoder)
    for query in ["", "   ", "\n\t "]:
        # A blank query matches nothing in every mode (not the pages nearest the empty string).
        for mode in ("hybrid", "dense", "bm25"):
            assert PageSearcher(store, encoder, mode=mode).search(query, k=3) == []
    # ~6,000 characters, far past MiniLM's 256 tokens: embedded in windows that are pooled, not cut.
    long_query = " ".join(["firewall rules allow ssh on port twenty two"] * 130)
    vector = encoder.encode_queries([long_query])[0]
    assert vector.shape == (encoder.info.dimensions,) and np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    best = searcher.search(long_query, k=1)[0]
    assert (best.source, best.page) == (str(corpus["network"]), 2)
    assert _snapshot(store, tmp_path / "store") == before


def test_query_over_the_token_limit_is_refused_naming_the_limit(tmp_path, encoder, corpus):
    from pagesight.errors import ConfigurationError
    from pagesight.retrieval.search import DEFAULT_MAX_QUERY_TOKENS, PageSearcher, count_query_tokens

    store = PageStore(tmp_path / "store")
    assert ingest(list(corpus.values()), store, encoder, show_progress=False).ok
    query = " ".join(["firewall rules allow ssh"] * 30)
    tokens = count_query_tokens(encoder, query)
    assert tokens == encoder.count_tokens(query) > len(query.split())  # the tokenizer's count
    assert 120 <= tokens < DEFAULT_MAX_QUERY_TOKENS
    assert PageSearcher(store, encoder).search(query, k=1)[0].source == str(corpus["network"])
    words = count_query_tokens(None, query)
    assert words == 4 * 30
    # BM25 alone counts words and marks (it never runs the encoder, so it does not load one to tokenize)
    for mode, counted in (("hybrid", tokens), ("dense", tokens), ("bm25", words)):
        strict = PageSearcher(store, encoder, mode=mode, max_query_tokens=counted - 1)
        message = rf"{counted} tokens, more than max_query_tokens={counted - 1}"
        with pytest.raises(ConfigurationError, match=message):
            strict.search(query, k=1)
        assert PageSearcher(store, encoder, mode=mode, max_query_tokens=counted).search(query, k=1)
    from pagesight.models.matryoshka import MatryoshkaEncoder

    unloaded = MatryoshkaEncoder("all-minilm-l6-v2")
    assert PageSearcher(store, unloaded, mode="bm25").search(query, k=1)[0].source == str(corpus["network"])
    assert not unloaded._loaded  # the length check did not load the model
    # A megabyte of text is refused from its length alone, without tokenizing it.
    huge = "ssh " * 250_000
    with pytest.raises(ConfigurationError, match=r"1,000,000 characters, more than max_query_tokens=2,048"):
        PageSearcher(store, encoder).search(huge, k=1)
    # Without a tokenizer (BM25 only), words and punctuation marks are counted.
    assert count_query_tokens(None, "port 22, please!") == 5
    with pytest.raises(ConfigurationError, match="max_query_tokens"):
        PageSearcher(store, encoder, max_query_tokens=0)


def test_nan_and_inf_vectors_from_a_backend_are_refused(tmp_path, encoder):
    from pagesight.errors import InvalidVectorError
    from pagesight.models.matryoshka import MatryoshkaEncoder

    class PoisonedEncoder(MatryoshkaEncoder):
        """The real MiniLM encoder, except pages that mention a poison word come back NaN or inf."""

        def encode_documents(self, texts):
            out = super().encode_documents(texts)
            for i, text in enumerate(texts):
                if "poison-nan" in text:
                    out[i, 3] = np.nan
                if "poison-inf" in text:
                    out[i, 0] = np.inf
            return out

    poisoned = PoisonedEncoder("all-minilm-l6-v2")
    assert poisoned.info == encoder.info
    store = PageStore(tmp_path / "store")
    good = write_pdf(tmp_path / "good.pdf", ["Clean page."])
    assert ingest([good], store, encoder, show_progress=False).ok
    before = _snapshot(store, tmp_path / "store")
    nan_doc = write_pdf(tmp_path / "nan.pdf", ["fine page", "poison-nan page"])
    inf_doc = write_pdf(tmp_path / "inf.pdf", ["poison-inf page"])
    report = ingest([nan_doc, inf_doc], store, poisoned, show_progress=False)
    errors = {r.source: r.error or "" for r in report.failed}
    assert set(errors) == {str(nan_doc), str(inf_doc)}
    assert f"{nan_doc} (page 2): embedding holds NaN or infinity" in errors[str(nan_doc)]
    assert f"{inf_doc} (page 1)" in errors[str(inf_doc)]
    assert _snapshot(store, tmp_path / "store") == before
    with pytest.raises(InvalidVectorError, match="NaN or infinity"):
        store.search(np.full(encoder.info.dimensions, np.nan, dtype=np.float32), embedder=encoder.info)


@pytest.mark.parametrize(
    "value", [{"a": 1}, ["a", "b"], None, float("nan")], ids=["nested", "list", "none", "nan"]
)
def test_bad_metadata_value_is_refused_and_nothing_written(tmp_path, value):
    # A list value used to reach Chroma's Rust core, which panics (a BaseException, no StoreError).
    from pagesight.documents.page import Page
    from pagesight.errors import ConfigurationError
    from pagesight.models.base import EmbedderInfo

    info = EmbedderInfo(model="m", revision=None, dimensions=4, kind="dense-text")
    page = Page("a.pdf", 1, "text", None, 0, 0, "ab" * 32)
    store = PageStore(tmp_path / "store")
    try:
        with pytest.raises(ConfigurationError, match=r"extra_metadata\['pagesight:x'\]"):
            store.add_source([page], np.ones((1, 4)), embedder=info, extra_metadata={"pagesight:x": value})
        assert store.count() == 0 and store.ids() == [] and store.metadata() == {}
        store.add_source([page], np.ones((1, 4)), embedder=info, extra_metadata={"pagesight:x": "ok"})
        assert store.ids() == [page.id] and store.metadata()["pagesight:x"] == "ok"
    finally:
        store.close()


def test_second_embedder_of_another_dimension_is_refused(tmp_path, encoder, corpus):
    from pagesight.errors import StoreMismatchError
    from pagesight.models.matryoshka import MatryoshkaEncoder

    store = PageStore(tmp_path / "store")
    assert ingest([corpus["garden"]], store, encoder, show_progress=False).ok
    before = _snapshot(store, tmp_path / "store")
    small = MatryoshkaEncoder("all-minilm-l6-v2", dimensions=128)
    assert small.info.dimensions == 128 != encoder.info.dimensions
    with pytest.raises(StoreMismatchError) as info:
        ingest([corpus["network"]], store, small, show_progress=False)
    assert "384" in str(info.value) and "128" in str(info.value)
    with pytest.raises(StoreMismatchError):
        store.search(np.ones(128, dtype=np.float32), embedder=small.info)
    assert _snapshot(store, tmp_path / "store") == before


def test_duplicate_sources_in_one_call_are_indexed_once(tmp_path, encoder, corpus):
    garden = corpus["garden"]
    store = PageStore(tmp_path / "store")
    report = ingest([garden, str(garden), garden, corpus["network"]], store, encoder, show_progress=False)
    assert [(r.source, r.status) for r in report.results] == [
        (str(garden), "indexed"),
        (str(corpus["network"]), "indexed"),
    ]
    assert store.count() == 5 and len(set(store.ids())) == 5


@pytest.mark.enable_socket
def test_same_bytes_under_a_second_name_keep_their_first_name(tmp_path, encoder, corpus):
    # Page ids come from the content hash: a copy (or the same PDF served at a URL) must neither
    # take the first name's pages over nor flip them back and forth on every re-index.
    garden = corpus["garden"]
    copy = tmp_path / "copy-of-garden.pdf"
    copy.write_bytes(garden.read_bytes())
    store = PageStore(tmp_path / "store")
    assert ingest([garden], store, encoder, show_progress=False).ok
    before = _snapshot(store, tmp_path / "store")
    with LoopbackHTTPServer({"/g.pdf": Route(garden.read_bytes(), content_type="application/pdf")}) as server:
        sources = [copy, server.url("/g.pdf"), garden]
        for _ in range(2):
            report = ingest(sources, store, encoder, show_progress=False, force=True)
            statuses = [(r.source, r.status, r.pages) for r in report.results]
            assert statuses == [
                (str(copy), "unchanged", 2),
                (server.url("/g.pdf"), "unchanged", 2),
                (str(garden), "indexed", 2),
            ]
            for result in report.results[:2]:
                assert any(f"same bytes as {garden}" in w for w in result.warnings), result.warnings
            assert _snapshot(store, tmp_path / "store") == before
    # Once the first name is gone, the second one indexes them.
    store.delete_source(str(garden))
    report = ingest([copy], store, encoder, show_progress=False)
    assert report.results[0].status == "indexed"
    assert [s.source for s in store.sources()] == [str(copy)]


def test_more_records_than_the_batch_limit(tmp_path, encoder):
    store = PageStore(tmp_path / "store")
    store.max_batch_size = 2  # Chroma's own limit is ~5,000 records; every call here splits in batches
    texts = [f"Page {i} about shipping lane number {i}." for i in range(1, 8)]
    doc = write_pdf(tmp_path / "seven.pdf", texts)
    assert ingest([doc], store, encoder, show_progress=False).pages_indexed == 7
    assert store.count() == 7 and len(store.pages()) == 7 and len(store.get(store.ids())) == 7
    first_ids = set(store.ids())
    write_pdf(doc, [*texts[:5], "A new sixth page.", "A new seventh page.", "An eighth page."])
    assert ingest([doc], store, encoder, show_progress=False).pages_indexed == 8
    assert store.count() == 8 and not first_ids & set(store.ids())  # old version gone, in batches
    assert len(list((tmp_path / "store" / "images").rglob("*.png"))) == 8
    assert store.delete_source(str(doc)) == 8
    assert store.count() == 0 and not list((tmp_path / "store" / "images").rglob("*.png"))

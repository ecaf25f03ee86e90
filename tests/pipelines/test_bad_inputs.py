"""Each bad input fails alone, named, with nothing of it left in the store (issue 2, item 9)."""

from __future__ import annotations

from pathlib import Path

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

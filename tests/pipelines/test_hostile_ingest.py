"""Hostile sources through ingest and ``pagesight index`` (issue 12, items 5, 8 and 9).

Each bad source fails alone, named, with exit code 1 and nothing of it in the store; the odd but
valid names round-trip through Chroma's metadata filters (index, sources, delete, re-index).
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagesight.cli import main
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.store import PageStore
from tests.documents.doc_factories import pdf_bytes, png_bytes, tiff_frames
from tests.documents.test_hostile_sources import TEXT_BOMBS, as_nobody, rmtree_deep
from tests.http_server import LoopbackHTTPServer, Route

from .conftest import write_pdf


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored(capsys, store: Path) -> list[dict[str, object]]:
    code, out, err = run(capsys, "sources", "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary folder user 65534 can enter, removed however deep it grew."""
    folder = Path(tempfile.mkdtemp(prefix="pagesight-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        rmtree_deep(folder)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "good.pdf", ["Lighthouse keepers trimmed the wicks every evening."])


# --------------------------------------------------------------------------- page limits


def test_index_refuses_a_tiff_over_max_pages_and_leaves_the_store_unchanged(tmp_path, good, capsys):
    tiff = tmp_path / "scan300.tiff"
    tiff.write_bytes(tiff_frames([(8, 8)] * 300, ["white"] * 300))
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(good), "--store", str(store), "-q")
    assert code == 0, err
    before = stored(capsys, store)
    code, _, err = run(capsys, "index", str(tiff), "--store", str(store), "-q", "--max-pages", "10")
    assert code == 1
    assert f"FAILED {tiff}" in err and "300 pages" in err and "--max-pages" in err
    assert stored(capsys, store) == before
    with PageStore(store) as opened:
        assert opened.count() == 1


@pytest.mark.enable_socket
def test_index_refuses_a_long_html_page_over_max_pages(tmp_path, good, capsys):
    body = "".join(f"<p>Paragraph {i}. {'A sentence about tides. ' * 40}</p>" for i in range(200))
    html = f"<html><body>{body}</body></html>".encode()
    store = tmp_path / "store"
    with LoopbackHTTPServer({"/long.html": Route(html, content_type="text/html")}) as server:
        url = server.url("/long.html")
        code, _, err = run(capsys, "index", str(good), url, "--store", str(store), "-q", "--max-pages", "10")
    assert code == 1
    assert f"FAILED {url}" in err and "max_pages=10" in err
    assert stored(capsys, store) == [{"source": str(good), "pages": 1}]


def test_ingest_reports_an_image_over_max_pages_alone(tmp_path, encoder, good):
    tiff = tmp_path / "four.tiff"
    tiff.write_bytes(tiff_frames([(8, 8)] * 4, ["red", "green", "blue", "white"]))
    store = PageStore(tmp_path / "store")
    report = ingest([good, tiff], store, encoder, show_progress=False, max_pages=3)
    assert [r.status for r in report.results] == ["indexed", "failed"]
    assert "4 pages" in (report.failed[0].error or "")
    assert [s.source for s in store.sources()] == [str(good)]
    assert not list((tmp_path / "store").glob(".staging-*"))


# --------------------------------------------------------------------------- names


def _latin1_file(folder: Path, content: bytes) -> str:
    raw = os.fsencode(folder) + b"/caf\xe9.pdf"
    with open(raw, "wb") as f:
        f.write(content)
    return os.fsdecode(raw)


def test_a_non_utf8_name_in_a_folder_fails_alone(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "good.pdf", ["A page about tides and harbours."])
    bad = _latin1_file(docs, pdf_bytes(["Un café au lait."]))
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(docs), "--store", str(store), "-q")
    assert code == 1
    assert "caf\\xe9.pdf" in err and "UTF-8" in err and "convmv" in err
    assert "InvalidArgumentError" not in err and "Invalid where clause" not in err
    assert stored(capsys, store) == [{"source": str(docs / "good.pdf"), "pages": 1}]
    # given directly, too; and asking the store about the name is "not indexed", not a crash
    code, _, err = run(capsys, "index", bad, "--store", str(store), "-q")
    assert code == 1 and "convmv" in err
    with PageStore(store) as opened:
        assert opened.source_info(bad) is None and opened.delete_source(bad) == 0
        assert opened.count() == 1


ODD_NAMES = [
    unicodedata.normalize("NFC", "café.pdf"),
    unicodedata.normalize("NFD", "café.pdf"),  # the same letters, other bytes: a second file
    "📄 report.pdf",
    'it\'s "quoted".pdf',
    "line\nbreak.pdf",
    "100% done.pdf",
    "-rf.pdf",
    "$(touch pwned).pdf",
    "x" * 200 + ".pdf",
]


def test_odd_unicode_names_round_trip_through_metadata_filters(tmp_path, encoder):
    docs = tmp_path / "docs"
    docs.mkdir()
    paths = []
    for i, name in enumerate(ODD_NAMES):
        paths.append(write_pdf(docs / name, [f"Document number {i} about subject {name!r}."]))
    assert len({p.name for p in paths}) == len(ODD_NAMES)
    store = PageStore(tmp_path / "store")
    report = ingest([docs], store, encoder, show_progress=False)
    assert report.ok and len(report.results) == len(ODD_NAMES)
    names = sorted(str(p) for p in paths)
    assert [s.source for s in store.sources()] == names
    for path in paths:
        info = store.source_info(str(path))
        assert info is not None and info.pages == 1
        assert [h.source for h in store.pages(str(path))] == [str(path)]
    again = ingest([docs], store, encoder, show_progress=False)
    assert {r.status for r in again.results} == {"unchanged"}
    nfc, nfd = paths[0], paths[1]
    assert store.delete_source(str(nfc)) == 1
    assert store.source_info(str(nfc)) is None and store.source_info(str(nfd)) is not None
    for path in paths[1:]:
        assert store.delete_source(str(path)) == 1
    assert store.count() == 0


def test_odd_names_through_the_cli(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    paths = [write_pdf(docs / n, [f"Page {i} of an odd name."]) for i, n in enumerate(ODD_NAMES[:7])]
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(docs), "--store", str(store), "-q")
    assert code == 0, err
    assert sorted(s["source"] for s in stored(capsys, store)) == sorted(str(p) for p in paths)
    code, _, err = run(capsys, "index", str(docs), "--store", str(store), "-q")
    assert code == 0 and "0 source(s) indexed" in err and "7 unchanged" in err
    code, _, err = run(capsys, "delete", "--store", str(store), *[str(p) for p in paths])
    assert code == 0, err
    assert stored(capsys, store) == []


# --------------------------------------------------------------------------- OS errors, deep folders


def test_os_errors_fail_alone_without_a_traceback(tmp_path, encoder, good, caplog):
    loop = tmp_path / "loop.pdf"
    loop.symlink_to(loop)
    long_name = tmp_path / ("y" * 300 + ".pdf")
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    store = PageStore(tmp_path / "store")
    report = ingest([loop, long_name, fifo, good], store, encoder, show_progress=False)
    errors = {Path(r.source).name[:8]: r.error or "" for r in report.failed}
    assert "symbolic links" in errors["loop.pdf"]
    assert "too long" in errors["y" * 8]
    assert "not a regular file" in errors["pipe.pdf"]
    assert "unexpected error" not in caplog.text
    assert [s.source for s in store.sources()] == [str(good)]


def test_permission_denied_fails_alone_through_ingest(scratch, encoder):
    tmp_path = scratch
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(pdf_bytes(["secret"]))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inner.pdf").write_bytes(pdf_bytes(["inner"]))
    secret.chmod(0)
    locked.chmod(0)
    (tmp_path / "store").mkdir(mode=0o777)
    (tmp_path / "store").chmod(0o777)
    store = PageStore(tmp_path / "store")

    def attempt() -> list[list[str | None]]:
        report = ingest([secret, locked], store, encoder, show_progress=False)
        return [[r.source, r.status, r.error] for r in report.results]

    try:
        answer = as_nobody(attempt)
    finally:
        secret.chmod(0o644)
        locked.chmod(0o755)
    assert "error" not in answer, answer
    results = answer["value"]
    assert [r[:2] for r in results] == [[str(secret), "failed"], [str(locked), "failed"]]
    for source, _, error in results:
        assert error.startswith(f"{source}: permission denied") and "PermissionError" not in error


def test_a_very_deep_folder_does_not_stop_the_good_files(scratch, capsys):
    tmp_path = scratch
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "good.pdf", ["Beside a folder 1,100 levels deep."])
    here = os.getcwd()
    try:
        os.chdir(docs)
        for _ in range(1100):
            os.mkdir("d")
            os.chdir("d")
        write_pdf(Path(os.getcwd()) / "deep.pdf", ["At the bottom of the folders."])
    finally:
        os.chdir(here)
    store = tmp_path / "store"
    code, _, err = run(capsys, "index", str(docs), "--store", str(store), "-q")
    assert code == 0, err
    assert "2 source(s) indexed (2 pages)" in err
    assert "RecursionError" not in err


@pytest.mark.parametrize("name", ["ztxt-before-pixels", "many-small-chunks"])
def test_png_text_bomb_fails_alone(tmp_path, encoder, good, name):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(TEXT_BOMBS[name]())
    store = PageStore(tmp_path / "store")
    report = ingest([bomb, good], store, encoder, show_progress=False)
    (failed,) = report.failed
    assert failed.source == str(bomb) and "decompression bomb" in (failed.error or "")
    assert "ValueError" not in (failed.error or "")
    assert [s.source for s in store.sources()] == [str(good)]


# --------------------------------------------------------------------------- a folder that holds the store


@pytest.mark.parametrize("store_name", ["idx", ".idx"])
def test_indexing_a_folder_that_holds_the_store_twice_gives_the_same_pages(tmp_path, capsys, store_name):
    folder = tmp_path / "work"
    folder.mkdir()
    write_pdf(folder / "notes.pdf", ["Notes on tides.", "Notes on harbours."])
    (folder / "photo.png").write_bytes(png_bytes((40, 30), "orange"))
    store = folder / store_name
    counts = []
    for _ in range(2):
        code, _, err = run(capsys, "index", str(folder), "--store", str(store), "-q", "--force")
        assert code == 0, err
        sources = stored(capsys, store)
        counts.append(sum(int(s["pages"]) for s in sources))  # type: ignore[call-overload]
        assert all(not str(s["source"]).startswith(str(store)) for s in sources), sources
    assert counts == [3, 3]
    assert sorted(s["source"] for s in stored(capsys, store)) == [
        str(folder / "notes.pdf"),
        str(folder / "photo.png"),
    ]


def test_a_store_image_folder_elsewhere_in_the_tree_is_excluded(tmp_path, encoder):
    folder = tmp_path / "work"
    folder.mkdir()
    write_pdf(folder / "notes.pdf", ["Notes on tides."])
    store = PageStore(tmp_path / "db", image_dir=folder / "page-images")
    for _ in range(2):
        ingest([folder], store, encoder, show_progress=False, force=True)
        assert any((folder / "page-images").iterdir())
        assert [s.source for s in store.sources()] == [str(folder / "notes.pdf")]

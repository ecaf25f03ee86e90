"""Store health: a damaged store says so (and how to repair it); a plain re-index repairs missing files.

Each test damages a real store the way a user or a disk would (a zeroed database, a deleted image or
token segment, a stray image, a journal entry left behind, a folder where the lock file was) and looks
at it through the CLI (``pagesight.cli.main`` exit codes) and the Python API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pagesight.cli import main
from pagesight.documents.page import Page
from pagesight.errors import DamagedStoreError, StoreError
from pagesight.models.base import EmbedderInfo
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore
from pagesight.retrieval.token_store import TokenStore
from tests.documents.doc_factories import pdf_bytes

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

DENSE = EmbedderInfo("test/dense", "r1", 4, "dense-text")
LATE = EmbedderInfo("test/late", "r1", 4, "late-interaction")
MakePages = Callable[..., list[Page]]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _dense_store(tmp_path: Path, make_pages: MakePages, n: int = 2) -> Path:
    path = tmp_path / "store"
    with PageStore(path) as store:
        store.add_source(make_pages("a.pdf", n), np.eye(4)[:n], embedder=DENSE)
    return path


def _late_store(tmp_path: Path, make_pages: MakePages, *, images: bool = True) -> Path:
    path = tmp_path / "store"
    with MultiVectorStore(path) as store:
        store.add_source(make_pages("a.pdf", 2, images=images), [np.eye(4)[:2], np.eye(4)[2:]], embedder=LATE)
    return path


def _image_files(path: Path) -> list[Path]:
    return sorted(p for p in (path / "images").rglob("*") if p.is_file())


# -- a lost database ------------------------------------------------------------------------------


def test_an_emptied_database_beside_page_images_is_damaged_not_empty(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dense_store(tmp_path, make_pages)
    (path / "chroma.sqlite3").write_bytes(b"")  # zeroed: Chroma starts a new, empty database
    code, out, err = _run(capsys, "sources", "--store", str(path))
    assert code == 1 and out == ""
    assert "damaged" in err and "holds no pages" in err and f"pagesight check --store {path}" in err
    with PageStore(path) as store, pytest.raises(DamagedStoreError, match="image folder holds page images"):
        store.sources()
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1
    assert "database holds no pages, but the image folder holds 2 page images" in out
    assert "index the sources again" in out
    code, out, _ = _run(capsys, "check", "--store", str(path), "--repair")
    assert code == 0 and "every part agrees" in out
    assert _image_files(path) == []
    code, out, _ = _run(capsys, "sources", "--store", str(path), "--json")
    assert code == 0 and json.loads(out) == []


def test_an_unreadable_database_is_damaged_with_what_to_do(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dense_store(tmp_path, make_pages)
    db = path / "chroma.sqlite3"
    db.write_bytes(b"\0" * db.stat().st_size)
    code, _, err = _run(capsys, "sources", "--store", str(path))
    assert code == 1 and "damaged" in err and "cannot be read" in err and "Move the folder aside" in err
    with pytest.raises(DamagedStoreError):
        PageStore(path).count()
    health = PageStore(path).check()
    assert not health.ok and health.database_error is not None and health.database_lost
    code, out, _ = _run(capsys, "check", "--store", str(path), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and "not a database" in report["database_error"]


def test_a_late_store_whose_database_was_replaced_keeps_its_tokens_and_says_so(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _late_store(tmp_path, make_pages, images=False)  # no images: only the tokens show it
    (path / "chroma.sqlite3").write_bytes(b"")
    code, _, err = _run(capsys, "sources", "--store", str(path))
    assert code == 1 and "damaged" in err and "token matrices of 2 pages" in err
    with pytest.raises(DamagedStoreError):
        MultiVectorStore(path).count()
    tokens = TokenStore(path / "tokens")
    try:
        assert len(tokens.ids()) == 2  # not dropped as leftovers of an interrupted write
    finally:
        tokens.close()
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1 and "2 token matrices without a record" in out


def test_tokens_of_an_interrupted_first_write_are_still_leftovers_not_damage(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = MultiVectorStore(path)
    try:
        assert store.count() == 0
        tokens = store.token_store
        tokens.set_owner(store.page_store.collection_id())
        tokens.put(["x-p1"], [np.eye(4)[:1]])  # what a crash right after the token write leaves
    finally:
        store.close()
    with MultiVectorStore(path) as again:
        assert again.count() == 0
        assert again.last_reconcile is not None and again.last_reconcile.tokens_without_record == ("x-p1",)


# -- missing and stray files ----------------------------------------------------------------------


def test_a_deleted_page_image_is_warned_about_once_and_reported(
    tmp_path: Path,
    make_pages: MakePages,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _dense_store(tmp_path, make_pages)
    gone = _image_files(path)[0]
    gone.unlink()
    with PageStore(path) as store:
        for _ in range(2):
            hits = store.search(np.eye(4)[0], k=2, embedder=DENSE)
            assert all(h.image is None or h.image.is_file() for h in hits)
        assert sum(h.image is None for h in hits) == 1
        warned = [r for r in caplog.records if "is missing" in r.getMessage()]
        assert len(warned) == 1 and "a.pdf page" in warned[0].getMessage()
        health = store.check()
    assert not health.ok and [r.source for r in health.records_without_image] == ["a.pdf"]
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1 and "1 records whose page image is missing: a.pdf p." in out
    assert "a plain `pagesight index" in out


def test_a_plain_reindex_restores_a_deleted_page_image(
    tmp_path: Path, encoder: object, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(pdf_bytes(["Tomatoes need full sun.", "Compost improves the soil."]))
    path = tmp_path / "store"
    store = PageStore(path)
    try:
        assert ingest([pdf], store, encoder, show_progress=False).ok  # type: ignore[arg-type]
        again = ingest([pdf], store, encoder, show_progress=False)  # type: ignore[arg-type]
        assert [r.status for r in again.results] == ["unchanged"]
        images = _image_files(path)
        images[1].unlink()
        repaired = ingest([pdf], store, encoder, show_progress=False)  # type: ignore[arg-type]
        assert [(r.status, r.pages) for r in repaired.results] == [("indexed", 2)]
        assert _image_files(path) == images
        assert store.check().ok and store.count() == 2
    finally:
        store.close()
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 0 and "2 pages, 2 page images" in out


def test_a_plain_cli_index_rerun_repairs_a_deleted_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(pdf_bytes(["Roses are pruned in early spring."]))
    store = str(tmp_path / "store")
    assert _run(capsys, "index", str(pdf), "--store", store, "-q")[0] == 0
    (image,) = _image_files(Path(store))
    image.unlink()
    code, _, err = _run(capsys, "index", str(pdf), "--store", store, "-q")
    assert code == 0 and "1 source(s) indexed" in err
    assert image.is_file()
    assert _run(capsys, "check", "--store", store)[0] == 0


def test_a_deleted_token_segment_is_reported_and_a_rewrite_repairs_it(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _late_store(tmp_path, make_pages)
    segments = sorted((path / "tokens" / "segments").glob("*.bin"))
    assert segments
    for seg in segments:
        seg.unlink()
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1 and "token segment files missing or cut short: 000001.bin" in out
    assert "2 records without token matrices" in out
    pages = make_pages("a.pdf", 2)
    with MultiVectorStore(path) as store:
        assert store.source_info("a.pdf") is None  # so ingest writes it again
        store.add_source(pages, [np.eye(4)[:2], np.eye(4)[2:]], embedder=LATE)
        assert store.source_info("a.pdf") is not None
        assert len(store.search(np.eye(4)[:1], k=2, embedder=LATE)) == 2
    code, out, _ = _run(capsys, "check", "--store", str(path), "--repair")  # the dead segment row goes
    assert code == 0, out
    assert _run(capsys, "check", "--store", str(path))[0] == 0


def test_repair_of_a_late_store_with_a_lost_segment_leaves_a_store_a_reindex_completes(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _late_store(tmp_path, make_pages)
    for seg in (path / "tokens" / "segments").glob("*.bin"):
        seg.unlink()
    code, out, _ = _run(capsys, "check", "--store", str(path), "--repair")
    assert code == 0, out
    with MultiVectorStore(path) as store:
        assert store.count() == 0 and store.source_info("a.pdf") is None


def test_an_orphan_image_is_reported_and_removed_by_repair(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dense_store(tmp_path, make_pages)
    stray = path / "images" / "ff" / ("f" * 32 + "-p1.png")
    stray.parent.mkdir()
    stray.write_bytes(b"not referenced")
    with PageStore(path) as store:
        assert store.count() == 2  # a store with records opens as before
        health = store.check()
    assert health.orphan_images == (f"ff/{'f' * 32}-p1.png",) and not health.ok
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1 and "1 page images no record uses: ff/" in out and "--repair" in out
    code, out, _ = _run(capsys, "check", "--store", str(path), "--repair")
    assert code == 0 and not stray.exists() and len(_image_files(path)) == 2


def test_ocr_word_boxes_beside_page_images_are_not_orphans(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OCR'd page's word boxes (``<image stem>.words.json``, for heatmaps) belong to its image:
    check reports nothing and repair keeps them; once their page is deleted they go with it."""
    pages = make_pages("a.pdf", 2)
    for page in pages:
        assert page.image is not None
        Path(page.image).with_suffix(".words.json").write_text('{"words": []}')
    path = tmp_path / "store"
    with PageStore(path) as store:
        store.add_source(pages, np.eye(4)[:2], embedder=DENSE)
        boxes = sorted((path / "images").rglob("*.words.json"))
        assert len(boxes) == 2
        health = store.check()
        assert health.ok and health.orphan_images == (), health.problems()
    code, _, _ = _run(capsys, "check", "--store", str(path), "--repair")
    assert code == 0 and all(b.is_file() for b in boxes)
    with PageStore(path) as store:
        store.delete_source("a.pdf")
    assert not any(b.exists() for b in boxes)


def test_a_leftover_journal_entry_is_reported_then_replayed(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dense_store(tmp_path, make_pages)
    (path / "journal").mkdir(exist_ok=True)
    (path / "journal" / "abc.json").write_text(
        json.dumps({"action": "adding b.pdf", "ids": [], "images": []})
    )
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 1 and "1 journal entries of interrupted writes: abc.json" in out
    assert (path / "journal" / "abc.json").exists()  # check changes nothing
    code, _, _ = _run(capsys, "sources", "--store", str(path))  # opening replays it
    assert code == 0 and not (path / "journal" / "abc.json").exists()
    assert _run(capsys, "check", "--store", str(path))[0] == 0


def test_a_healthy_store_checks_ok(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _late_store(tmp_path, make_pages)
    with MultiVectorStore(path) as store:
        health = store.check()
    assert health.ok and health.problems() == [] and health.pages == 2 and health.image_files == 2
    code, out, _ = _run(capsys, "check", "--store", str(path))
    assert code == 0 and "2 pages, 2 page images, token matrices; every part agrees" in out
    assert _run(capsys, "check", "--store", str(tmp_path / "nothing-here"))[0] == 2


# -- locks ----------------------------------------------------------------------------------------


def test_a_folder_in_place_of_the_lock_file_is_a_clear_store_error(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _dense_store(tmp_path, make_pages)
    (path / "pagesight.lock").unlink()
    (path / "pagesight.lock").mkdir()
    with (
        PageStore(path) as store,
        pytest.raises(StoreError, match="pagesight.lock is not a regular file") as err,
    ):
        store.delete_source("a.pdf")
    assert "Remove it" in str(err.value) and not isinstance(err.value.__cause__, IsADirectoryError)
    code, _, err_text = _run(capsys, "delete", "a.pdf", "--store", str(path))
    assert code == 1 and "pagesight.lock is not a regular file" in err_text
    assert PageStore(path).count() == 2  # nothing was deleted


_TOKEN_HOLDER = textwrap.dedent(
    """
    import os, sys
    from pagesight.retrieval.token_store import TokenStore

    store = TokenStore(sys.argv[1])
    with store.locked():
        print("ready", os.getpid(), flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def token_holder(tmp_path: Path) -> Iterator[tuple[Path, int, subprocess.Popen[str]]]:
    folder = tmp_path / "tokens"
    proc = subprocess.Popen(
        [sys.executable, "-c", _TOKEN_HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        word, pid = proc.stdout.readline().split()
        assert word == "ready"
        yield folder, int(pid), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_the_token_store_lock_times_out_naming_the_holder(
    token_holder: tuple[Path, int, subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, pid, proc = token_holder
    monkeypatch.setattr(TokenStore, "lock_timeout", 0.3)
    tokens = TokenStore(folder)
    try:
        with pytest.raises(StoreError, match=rf"being written by another process \(pid {pid}\)"):
            tokens.put(["a-p1"], [np.eye(4)[:1]])
        assert tokens.count() == 0  # readers go on
        proc.kill()  # the kernel drops a dead holder's lock
        proc.wait(timeout=30)
        tokens.put(["a-p1"], [np.eye(4)[:1]])
        assert tokens.count() == 1
    finally:
        tokens.close()


@pytest.mark.skipif(os.name != "posix", reason="checks the lock with fcntl from another process")
def test_the_store_lock_is_a_filelock_that_other_tools_see(tmp_path: Path, make_pages: MakePages) -> None:
    from filelock import FileLock, Timeout

    path = tmp_path / "store"
    with PageStore(path) as store:
        store.add_source(make_pages("a.pdf", 1), np.eye(4)[:1], embedder=DENSE)
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from filelock import FileLock, Timeout\n"
                "try:\n    FileLock(sys.argv[1]).acquire(timeout=0); print('free')\n"
                "except Timeout:\n    print('held')",
                str(path / "pagesight.lock"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert other.stdout.strip() == "held"
        assert (path / "pagesight.lock.pid").read_text() == str(os.getpid())
    lock = FileLock(str(path / "pagesight.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:  # pragma: no cover - the assertion below reports it
        pytest.fail("the lock was not released by close()")
    lock.release()

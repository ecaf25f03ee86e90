"""Hostile stores: paths read from the journal, record metadata or the token index never leave the store.

A store copied from someone else, or a collection on a shared Chroma server, is untrusted input. The
records here are written with raw chromadb (as such a store would hold them), the journal intents and
token index rows by hand.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pagesight.cli import main
from pagesight.documents.page import Page
from pagesight.errors import StoreError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval._images import resolve_stored_path
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore
from pagesight.retrieval.token_store import TokenStore

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

DENSE = EmbedderInfo("test/dense", "r1", 4, "dense-text")
LATE = EmbedderInfo("test/late", "r1", 4, "late-interaction")
MakePages = Callable[..., list[Page]]


def _victims(tmp_path: Path) -> list[Path]:
    """Files outside the image folder that a hostile path could name."""
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    files = [tmp_path / "store" / "victim.txt", tmp_path / "victim.txt", outside / "victim.txt"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("keep me")
    return files


def _intact(files: list[Path]) -> bool:
    return all(f.is_file() and f.read_text() == "keep me" for f in files)


def _store_with_one_source(tmp_path: Path, make_pages: MakePages) -> Path:
    path = tmp_path / "store"
    with PageStore(path) as store:
        store.add_source(make_pages("good.pdf", 2), np.eye(4)[:2], embedder=DENSE)
    return path


def _inject(path: Path, id_: str, meta: dict[str, object]) -> None:
    """Write one record straight into the store's collection, as a hostile copy would hold it."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    try:
        col = client.get_collection("pagesight")
        col.upsert(ids=[id_], embeddings=[[1.0, 0.0, 0.0, 0.0]], documents=["evil page"], metadatas=[meta])
    finally:
        client.close()


def _hostile_meta(image: str) -> dict[str, object]:
    return {
        "source": "evil.pdf",
        "page": 1,
        "image": image,
        "width": 8,
        "height": 6,
        "content_hash": "e" * 64,
        "source_pages": 1,
    }


# -- the one function -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel",
    [
        "../victim.txt",
        "ab/../../victim.txt",
        "..\\victim.txt",
        "/etc/passwd",
        "\\\\server\\share\\x.png",
        "C:\\Windows\\x.png",
        "C:x.png",
        "ab/x\x00.png",
        "",
        ".",
        None,
        42,
        ["ab", "x.png"],
    ],
)
def test_resolve_stored_path_refuses_what_would_leave_the_folder(tmp_path: Path, rel: object) -> None:
    root = tmp_path / "images"
    root.mkdir()
    assert resolve_stored_path(root, rel) is None


def test_resolve_stored_path_refuses_a_link_out_and_keeps_ordinary_names(tmp_path: Path) -> None:
    root = tmp_path / "images"
    (root / "ab").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "zz").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "ab" / "link.png").symlink_to(tmp_path / "outside" / "secret.png")
    assert resolve_stored_path(root, "zz/x.png") is None
    assert resolve_stored_path(root, "ab/link.png") is None
    assert resolve_stored_path(root, "ab/0123-p1.png") == root / "ab" / "0123-p1.png"
    assert resolve_stored_path(root, "ab/..x-p1.png") == root / "ab" / "..x-p1.png"  # not a '..' part


# -- journal --------------------------------------------------------------------------------------


def test_opening_a_store_whose_journal_names_outside_files_deletes_none_of_them(
    tmp_path: Path,
    make_pages: MakePages,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    victims = _victims(tmp_path)
    journal = path / "journal"
    journal.mkdir(exist_ok=True)
    images = ["../victim.txt", "../../victim.txt", str(victims[2]), "../../outside/victim.txt"]
    (journal / "0123.json").write_text(json.dumps({"action": "adding x", "ids": [], "images": images}))
    code = main(["sources", "--store", str(path), "--json"])  # opening replays the journal
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out) == [{"source": "good.pdf", "pages": 2}]
    assert _intact(victims)
    assert not (journal / "0123.json").exists()  # replayed (the refused paths reported, not followed)
    assert "refusing" in caplog.text and "victim.txt" in caplog.text


def test_recovery_does_not_follow_a_link_out_of_the_image_folder(
    tmp_path: Path, make_pages: MakePages
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".precious.tmp").write_text("keep me")
    (path / "images" / "zz").symlink_to(outside, target_is_directory=True)
    (path / "journal").mkdir(exist_ok=True)
    (path / "journal" / "1.json").write_text(json.dumps({"action": "adding y", "ids": [], "images": []}))
    with PageStore(path) as store:
        assert store.count() == 2  # opened and repaired
    assert (outside / ".precious.tmp").read_text() == "keep me"


# -- record metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["../../victim.txt", "../victim.txt", "ABSOLUTE"])
def test_a_record_naming_an_outside_image_is_deleted_without_touching_that_file(
    tmp_path: Path, make_pages: MakePages, capsys: pytest.CaptureFixture[str], image: str
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    victims = _victims(tmp_path)
    _inject(path, "evil-p1", _hostile_meta(str(victims[2]) if image == "ABSOLUTE" else image))
    with PageStore(path) as store:
        hits = store.search(np.array([1.0, 0.0, 0.0, 0.0]), k=5, embedder=DENSE)
        evil = [h for h in hits if h.source == "evil.pdf"]
        assert len(evil) == 1 and evil[0].image is None  # never the outside path
        assert all(h.image is None or h.image.is_relative_to(store.image_dir) for h in hits)
        assert [h.image for h in store.get(["evil-p1"])] == [None]
        assert [h.image for h in store.pages("evil.pdf")] == [None]
    assert main(["delete", "evil.pdf", "--store", str(path)]) == 0
    assert "deleted evil.pdf (1 pages)" in capsys.readouterr().err
    assert _intact(victims)
    with PageStore(path) as store:
        assert [s.source for s in store.sources()] == ["good.pdf"]


def test_delete_source_through_the_python_api_leaves_outside_files(
    tmp_path: Path, make_pages: MakePages
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    victims = _victims(tmp_path)
    _inject(path, "evil-p1", _hostile_meta("../../victim.txt"))
    with PageStore(path) as store:
        assert store.delete_source("evil.pdf") == 1
        assert store.delete_source("good.pdf") == 2
        assert store.count() == 0
    assert _intact(victims)


def test_a_record_whose_image_links_out_of_the_folder_is_not_followed(
    tmp_path: Path, make_pages: MakePages
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_text("keep me")
    (path / "images" / "zz").symlink_to(outside, target_is_directory=True)
    _inject(path, "evil-p1", _hostile_meta("zz/secret.png"))
    with PageStore(path) as store:
        (hit,) = store.get(["evil-p1"])
        assert hit.image is None
        assert store.delete(["evil-p1"]) == 1
    assert (outside / "secret.png").read_text() == "keep me"


def test_a_hostile_content_hash_cannot_place_an_image_outside(tmp_path: Path, make_pages: MakePages) -> None:
    page = make_pages("odd.pdf", 1)[0]
    hostile = Page(page.source, 1, page.text, page.image, 8, 6, "../../../../escaped")
    with (
        PageStore(tmp_path / "store") as store,
        pytest.raises(StoreError, match="would leave the image folder"),
    ):
        store.add_source([hostile], np.eye(4)[:1], embedder=DENSE)
    assert not list(tmp_path.rglob("escaped*"))


# -- token index ----------------------------------------------------------------------------------


def test_a_token_index_row_naming_a_segment_by_a_path_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "tokens"
    tokens = TokenStore(folder)
    tokens.put(["a-p1"], [np.eye(4)[:2]])
    tokens.close()
    (tmp_path / "victim.bin").write_text("keep me")
    with sqlite3.connect(folder / "index.sqlite3") as conn:
        conn.execute("UPDATE entries SET seq = '../../victim'")
    tokens = TokenStore(folder)
    try:
        with pytest.raises(StoreError, match="token store"):
            tokens.get(["a-p1"])
        with pytest.raises(StoreError, match="token store"):
            tokens.compact()
    finally:
        tokens.close()
    assert (tmp_path / "victim.bin").read_text() == "keep me"


def test_a_multivector_store_with_hostile_records_deletes_nothing_outside(
    tmp_path: Path, make_pages: MakePages
) -> None:
    path = tmp_path / "store"
    with MultiVectorStore(path) as store:
        store.add_source(make_pages("good.pdf", 1), [np.eye(4)[:2]], embedder=LATE)
    victims = _victims(tmp_path)
    tokens = TokenStore(path / "tokens")
    tokens.put(["evil-p1"], [np.eye(4)[:1]])
    tokens.close()
    _inject(path, "evil-p1", _hostile_meta("../../victim.txt"))
    with MultiVectorStore(path) as store:
        hits = store.search(np.eye(4)[:1], k=5, embedder=LATE, exhaustive=True)
        assert {h.id: h.image is None for h in hits}["evil-p1"]
        assert store.delete_source("evil.pdf") == 1
    assert _intact(victims)


# -- the class, not the instance ------------------------------------------------------------------

# Every call in pagesight/retrieval that deletes or writes a file, by function. Each one either goes
# through resolve_stored_path or deletes a path that did not come from stored data (reason given).
_REVIEWED = {
    ("store/_images.py", "place_image"): "a temporary beside dst; dst comes from resolve_stored_path",
    ("store/_images.py", "remove_image"): "its callers pass paths from resolve_stored_path",
    ("store/_journal.py", "finish"): "the journal file listed from the journal folder",
    (
        "store/_remote_images.py",
        "fetch",
    ): "writes the image path PageStore._fetch got from resolve_stored_path, "
    "through a uuid-named temporary beside it; names listed at the URL are checked in _remote_files",
    ("store/_journal.py", "pending"): "temporaries listed from the journal folder itself",
    ("store/_journal.py", "record"): "a new journal file named by a fresh uuid",
    ("hybrid.py", "save"): "the BM25 index's own files in the folder the caller names",
    ("store/centroids.py", "_remove_unrecorded"): "centroid and list files globbed from the index folder "
    "itself, deleted only when no recorded generation or segment owns their numbers",
    ("store/centroids.py", "_write_arrays"): "the index's own numbered centroid and list files and their "
    "temporaries, paths built from integers",
    ("bm25.py", "_write_segment"): "a new segment folder named by a fresh uuid (_new_name)",
    ("bm25.py", "_write_json"): "the manifest's own temporary, named by a fresh uuid",
    ("bm25.py", "_commit"): "tombstones named by a fresh uuid in segments _read_segment name-checked",
    ("bm25.py", "_collect_garbage"): "segments and temporaries listed from the index folder itself",
    ("bm25.py", "_unlink"): "its caller passes paths listed from the index folder",
    ("store/_bm25.py", "_commit_locked"): "the fixed marker name bm25/pending",
    ("store/_bm25.py", "_load_held"): "the fixed marker name bm25/pending",
    ("store/_bm25.py", "_write_marker"): "the marker's own temporary, named by a fresh uuid",
    ("store/_writelock.py", "_write_pid"): "the pid file's own temporary",
    ("store/pages.py", "add_source"): "the caller's staging images (Page.image), not stored data",
    ("store/pages.py", "_recover"): "paths from _leftover_copies and staging names, both resolve_stored_path",
    ("store/pages.py", "_delete_records"): "remove_image on resolve_stored_path results",
    ("store/pages.py", "_rollback"): "images this call placed at resolve_stored_path destinations",
    ("store/pages.py", "repair"): "orphan images from _image_files (resolve_stored_path)",
    ("store/tokens.py", "_remove_orphans"): "segment files listed from the segment folder",
    ("store/tokens.py", "_unlink_segment"): "names built from integer sequence numbers (_paths)",
    ("store/tokens.py", "_create"): "names built from integer sequence numbers (_paths)",
    ("store/tokens.py", "_write_rows"): "names built from integer sequence numbers (_paths)",
}
_FILE_METHODS = {"unlink", "rmdir", "write_text", "write_bytes"}  # Path methods
_FILE_NAMES = {"open", "remove_image"}  # builtin open() and the store's image removal
_OS_FUNCTIONS = {"open", "remove", "replace", "rename", "unlink", "rmdir", "rmtree"}  # os. and shutil.


def test_every_file_deletion_in_retrieval_is_reviewed() -> None:
    """A new unlink/rmtree/open in pagesight/retrieval fails here until it is checked and listed."""
    import pagesight.retrieval as pkg

    folder = Path(pkg.__file__).parent
    found: set[tuple[str, str]] = set()
    for file in sorted(folder.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and _changes_files(node):
                    found.add((file.relative_to(folder).as_posix(), func.name))
    unreviewed = sorted(found - set(_REVIEWED))
    assert not unreviewed, f"file-changing calls not reviewed for stored paths: {unreviewed}"


def _changes_files(node: ast.Call) -> bool:
    f = node.func
    if isinstance(f, ast.Name):  # builtin open(), remove_image()
        return f.id in _FILE_NAMES and not _is_read_only_open(node)
    if not isinstance(f, ast.Attribute):
        return False
    if isinstance(f.value, ast.Name) and f.value.id in ("os", "shutil"):
        return f.attr in _OS_FUNCTIONS and not _is_read_only_open(node)
    return f.attr in _FILE_METHODS


def _is_read_only_open(node: ast.Call) -> bool:
    """``open(x)`` / ``open(x, "rb")`` / ``os.open(x, os.O_RDONLY)`` read; they never delete."""
    name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
    if name != "open":
        return False
    mode = node.args[1] if len(node.args) > 1 else None
    if mode is None:
        return True
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return set(mode.value) <= {"r", "b"}
    return isinstance(mode, ast.Attribute) and mode.attr == "O_RDONLY"


def test_no_outside_path_survives_in_hits_even_with_odd_metadata(
    tmp_path: Path, make_pages: MakePages
) -> None:
    path = _store_with_one_source(tmp_path, make_pages)
    for i, image in enumerate([7, True, "\x00", "/", "..", "ab/../../x"]):
        meta = {**_hostile_meta("x"), "image": image, "source": f"odd{i}.pdf", "page": "abc" if i else 1}
        _inject(path, f"odd-{i}", meta)
    with PageStore(path) as store:
        hits = store.pages()
        assert len(hits) == 8
        for h in hits:
            assert h.image is None or (h.image.is_relative_to(store.image_dir) and ".." not in h.image.parts)

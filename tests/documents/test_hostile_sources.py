"""Hostile sources at the loader level (issue 12, items 5, 8 and 9).

Page and character limits on every multi-page source, names that are not UTF-8, OS errors
translated at one boundary, folders too deep to recurse, symlink loops, Pillow's own exceptions,
and folders that hold a pagesight store. Tests run as root, so "permission denied" is provoked in a
subprocess that drops to an unprivileged user (skipped, with the reason, when that is impossible).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from pagesight.documents import expand_sources, load_html_bytes, load_source, source_name
from pagesight.documents._common import reading
from pagesight.errors import (
    DocumentLoadError,
    ImageTooLargeError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from tests.documents.doc_factories import pdf_bytes, png_bytes, png_header_only, tiff_frames
from tests.http_server import LoopbackHTTPServer, Route

ROOT = Path(__file__).resolve().parents[2]


def _html(paragraphs: int, size: int = 900) -> bytes:
    body = "".join(f"<p>Paragraph {i}: {'word ' * (size // 5)}</p>" for i in range(paragraphs))
    return f"<html><head><title>Big</title></head><body>{body}</body></html>".encode()


# --------------------------------------------------------------------------- page limits: HTML


def test_html_over_max_pages_is_refused_naming_source_count_and_flag():
    data = _html(200)  # about 180 KB of text: 60+ pages of 3,000 characters
    with pytest.raises(DocumentLoadError) as info:
        list(load_html_bytes(data, source="https://example.org/big.html", max_pages=10))
    message = str(info.value)
    assert info.value.source == "https://example.org/big.html"
    assert "max_pages=10" in message and "--max-pages" in message and "more than" in message


def test_html_page_limit_is_exact_at_the_boundary():
    data = _html(40)
    n = len(list(load_html_bytes(data, source="u")))
    assert n > 3
    assert len(list(load_html_bytes(data, source="u", max_pages=n))) == n
    with pytest.raises(DocumentLoadError, match=f"max_pages={n - 1}"):
        load_html_bytes(data, source="u", max_pages=n - 1)


def test_huge_html_page_is_refused_without_reading_it_all():
    # 49 MB of text made 19,491 pages before; now parsing stops once 10 pages cannot hold the text.
    paragraph = "<p>" + "lorem ipsum dolor sit amet " * 40 + "</p>"
    data = ("<html><body>" + paragraph * (48 * 2**20 // len(paragraph)) + "</body></html>").encode()
    with pytest.raises(DocumentLoadError, match="max_pages=10") as info:
        load_html_bytes(data, source="https://example.org/huge.html", max_pages=10)
    assert "reading stopped" in str(info.value)


def test_html_text_beyond_max_chars_per_page_is_cut_with_a_warning():
    with pytest.warns(UserWarning, match="max_chars_per_page=150"):
        pages = list(load_html_bytes(_html(3, 400), source="u", max_chars_per_page=150))
    assert pages and max(len(p.text) for p in pages) <= 150


def test_html_pages_never_exceed_page_chars_even_with_long_headings():
    # Headings are carried to the next page with what follows them only when they fit there.
    html = "".join(f"<h2>{'heading ' * 50}{i}</h2><p>{'text ' * 100}</p>" for i in range(20))
    pages = list(load_html_bytes(html.encode(), source="u", page_chars=500))
    assert max(len(p.text) for p in pages) <= 500


@pytest.mark.enable_socket
def test_html_url_honours_max_pages_through_load_source():
    with LoopbackHTTPServer({"/big.html": Route(_html(200), content_type="text/html")}) as server:
        url = server.url("/big.html")
        with pytest.raises(DocumentLoadError, match="max_pages=10") as info:
            list(load_source(url, max_pages=10))
        assert url in str(info.value)
        assert len(list(load_source(url, max_pages=1000))) > 10


# --------------------------------------------------------------------------- page limits: images


@pytest.fixture(scope="module")
def tiff300(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiff") / "scan300.tiff"
    path.write_bytes(tiff_frames([(8, 8)] * 300, ["white"] * 300))
    return path


def test_tiff_with_more_frames_than_max_pages_is_refused_before_decoding(tiff300, tmp_path):
    out = tmp_path / "pages"
    with pytest.raises(DocumentLoadError) as info:
        load_source(tiff300, max_pages=10, image_dir=out)  # raised by the call, not the iteration
    message = str(info.value)
    assert str(tiff300) in message and "300 pages" in message and "--max-pages" in message
    assert not out.exists() or not any(out.iterdir())
    assert len(list(load_source(tiff300, max_pages=300, image_dir=out))) == 300


@pytest.mark.enable_socket
def test_tiff_url_honours_max_pages(tiff300):
    route = Route(tiff300.read_bytes(), content_type="image/tiff")
    with LoopbackHTTPServer({"/s.tiff": route}) as srv, pytest.raises(DocumentLoadError, match="300 pages"):
        load_source(srv.url("/s.tiff"), max_pages=10)


# --------------------------------------------------------------------------- names


def test_a_name_that_is_not_utf8_is_refused_naming_the_encoding(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.pdf"
    with open(raw, "wb") as f:
        f.write(pdf_bytes(["cafe"]))
    for given in (raw, os.fsdecode(raw)):
        with pytest.raises(UnsupportedSourceError) as info:
            load_source(given)
        message = str(info.value)
        assert "caf\\xe9.pdf" in message and "UTF-8" in message and "convmv" in message
        assert info.value.source.encode("utf-8")  # the error itself is printable text


def test_source_name_keeps_valid_unicode_exactly():
    for name in ("café.pdf", "cafe\u0301.pdf", "📄 \"q\" 'x' 100%.pdf", "-rf.pdf", "a\nb.pdf"):
        assert source_name(name) == name


# --------------------------------------------------------------------------- OS errors


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.pdf"
    os.mkfifo(fifo)
    with pytest.raises(DocumentLoadError, match="not a regular file"):
        load_source(fifo)


def test_dangling_symlink_is_not_found_naming_the_path(tmp_path):
    link = tmp_path / "moved.pdf"
    link.symlink_to(tmp_path / "gone.pdf")
    with pytest.raises(SourceNotFoundError) as info:
        load_source(link)
    assert str(link) in str(info.value)


@pytest.mark.parametrize("name", ["loop.pdf", "loop.png"])
def test_symlink_loop_is_a_typed_error(tmp_path, name):
    a, b = tmp_path / name, tmp_path / f"other-{name}"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(DocumentLoadError, match="symbolic links") as info:
        load_source(a)
    assert str(a) in str(info.value) and "ELOOP" in str(info.value)


def test_over_long_name_is_a_typed_error(tmp_path):
    path = tmp_path / ("x" * 300 + ".pdf")
    with pytest.raises(DocumentLoadError, match="too long") as info:
        load_source(path)
    assert "ENAMETOOLONG" in str(info.value)


def test_over_long_folder_name_is_a_typed_error(tmp_path):
    with pytest.raises(DocumentLoadError, match="too long"):
        load_source(tmp_path / ("d" * 300) / "a.pdf")


def test_folder_where_a_file_is_expected_is_a_typed_error(tmp_path):
    (tmp_path / "real").mkdir()
    with pytest.raises(DocumentLoadError, match="EISDIR") as info, reading("real"):
        (tmp_path / "real").read_bytes()
    assert "is a folder where a file was expected" in str(info.value)


def rmtree_deep(top: Path) -> None:
    """Remove a folder tree however deep (``shutil.rmtree`` recurses, and fails past ~1,000 levels)."""
    stack = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    names: list[str] = []
    while stack:
        fd = stack[-1]
        sub = None
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                sub = entry.name
                break
            os.unlink(entry.name, dir_fd=fd)
        if sub is not None:
            os.chmod(sub, 0o700, dir_fd=fd)
            stack.append(os.open(sub, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd))
            names.append(sub)
            continue
        os.close(stack.pop())
        if stack:
            os.rmdir(names.pop(), dir_fd=stack[-1])
    os.rmdir(top)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temporary folder any user can enter, removed however deep it grew.

    pytest's own temporary folders are private to the user running the tests, and pytest cannot
    clean a folder 1,100 levels deep, so the deep-tree and permission tests use this one.
    """
    folder = Path(tempfile.mkdtemp(prefix="pagesight-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        rmtree_deep(folder)


def as_nobody(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a forked child that dropped to user 65534 (nobody); return what it returns.

    The test suite runs as root, which no file permission stops, and the venv's Python lives under
    ``/root`` (mode 0700), so a fresh ``python`` cannot start as another user: fork instead, with
    pagesight already imported. What the child logs at WARNING is returned too.
    """
    if os.name != "posix" or not hasattr(os, "fork"):
        pytest.skip("permissions are tested on POSIX only")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)
            records: list[str] = []

            class Keep(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    records.append(record.getMessage())

            logging.getLogger("pagesight").addHandler(Keep(logging.WARNING))
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result: object = {"value": fn(), "log": records}
        except BaseException as e:  # report, never raise, in the child
            result = {"error": f"{type(e).__name__}: {e}"}
            code = 1
        with os.fdopen(write_end, "w") as out:
            json.dump(result, out)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as got:
        data = got.read()
    os.waitpid(pid, 0)
    answer = json.loads(data)
    if "error" in answer and "setuid" in answer["error"].lower():  # pragma: no cover - no CAP_SETUID
        pytest.skip(f"running as root and cannot switch to an unprivileged user: {answer['error']}")
    return answer


def _outcome(source: Path) -> str:
    try:
        list(load_source(source, render=False))
    except DocumentLoadError as e:
        return f"{type(e).__name__}: {e}"
    except Exception as e:  # what this test is about: nothing but DocumentLoadError may escape
        return f"RAW {type(e).__name__}: {e}"
    return "loaded"


def test_permission_denied_is_a_typed_error_naming_the_path(scratch):
    docs = scratch / "docs"
    docs.mkdir()
    (docs / "good.pdf").write_bytes(pdf_bytes(["readable"]))
    (docs / "secret.pdf").write_bytes(pdf_bytes(["secret"]))
    (docs / "secret.png").write_bytes(png_bytes((8, 8)))
    (docs / "locked").mkdir()
    (docs / "locked" / "inner.pdf").write_bytes(pdf_bytes(["inner"]))
    for path in (docs / "secret.pdf", docs / "secret.png", docs / "locked"):
        path.chmod(0)
    try:
        answer = as_nobody(
            lambda: {
                **{
                    name: _outcome(docs / name) for name in ("good.pdf", "secret.pdf", "secret.png", "locked")
                },
                "expanded": expand_sources([docs]),
            }
        )
    finally:
        for path in (docs / "secret.pdf", docs / "secret.png", docs / "locked"):
            path.chmod(0o755)
    assert "error" not in answer, answer
    out = answer["value"]
    assert out["good.pdf"] == "loaded"
    for name in ("secret.pdf", "secret.png", "locked"):
        assert out[name].startswith("DocumentLoadError: ") and "permission denied" in out[name], out
        assert str(docs / name) in out[name]
    # the unreadable sub-folder is skipped with a warning; the readable files are still found
    assert out["expanded"] == [str(docs / "good.pdf"), str(docs / "secret.pdf"), str(docs / "secret.png")]
    assert any("locked: skipped, permission denied" in line for line in answer["log"]), answer["log"]


# --------------------------------------------------------------------------- deep trees and loops


def _deep(top: Path, levels: int) -> Path:
    """Make ``levels`` nested folders under ``top`` (relative mkdir: never a path near PATH_MAX)."""
    here = os.getcwd()
    try:
        os.chdir(top)
        for _ in range(levels):
            os.mkdir("d")
            os.chdir("d")
        return Path(os.getcwd())
    finally:
        os.chdir(here)


def test_folder_1100_levels_deep_does_not_crash_and_good_files_are_found(scratch):
    tmp_path = scratch
    (tmp_path / "good.pdf").write_bytes(pdf_bytes(["beside the deep folder"]))
    bottom = _deep(tmp_path, 1100)
    (bottom / "deep.pdf").write_bytes(pdf_bytes(["at the bottom"]))
    found = expand_sources([tmp_path])
    assert found[-1] == str(tmp_path / "good.pdf")  # sorted by path parts: 'd' < 'good.pdf'
    assert found[0] == str(bottom / "deep.pdf")
    pages = list(load_source(tmp_path, render=False))
    assert [p.text for p in pages] == ["at the bottom", "beside the deep folder"]


def test_folder_deeper_than_path_max_skips_what_it_cannot_reach(scratch, caplog):
    tmp_path = scratch
    (tmp_path / "good.pdf").write_bytes(pdf_bytes(["good"]))
    top = tmp_path / "t"
    top.mkdir()
    here = os.getcwd()
    try:  # 40 levels of 200-character names: 8,000+ characters, past PATH_MAX (4,096)
        os.chdir(top)
        for _ in range(40):
            os.mkdir("n" * 200)
            os.chdir("n" * 200)
    finally:
        os.chdir(here)
    with caplog.at_level("WARNING"):
        found = expand_sources([tmp_path])
    assert found == [str(tmp_path / "good.pdf")]
    assert "skipped" in caplog.text


def test_symlink_loops_between_folders_are_not_followed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.pdf").write_bytes(pdf_bytes(["x"]))
    (tmp_path / "a" / "up").symlink_to(tmp_path)
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "folder.pdf").symlink_to(tmp_path)  # a link to a folder, named like a file
    assert expand_sources([tmp_path]) == [str(tmp_path / "a" / "x.pdf")]
    assert expand_sources([tmp_path], recursive=False) == []


def test_broken_entries_in_a_folder_fail_alone(tmp_path):
    (tmp_path / "good.pdf").write_bytes(pdf_bytes(["good"]))
    (tmp_path / "loop.pdf").symlink_to(tmp_path / "loop.pdf")
    os.mkfifo(tmp_path / "pipe.png")
    files = expand_sources([tmp_path])
    assert files == [str(tmp_path / n) for n in ("good.pdf", "loop.pdf", "pipe.png")]
    outcomes = {}
    for file in files:
        try:
            outcomes[Path(file).name] = len(list(load_source(file, render=False)))
        except DocumentLoadError as e:
            outcomes[Path(file).name] = type(e).__name__
    assert outcomes == {"good.pdf": 1, "loop.pdf": "DocumentLoadError", "pipe.png": "DocumentLoadError"}


# --------------------------------------------------------------------------- images Pillow rejects


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_chunks(extra: list[bytes], *, after_idat: bool = False) -> bytes:
    """A valid 8×8 PNG with ``extra`` chunks before (or after) its pixel data."""
    png = png_bytes((8, 8))
    at = png.index(b"IDAT") - 4 if not after_idat else png.index(b"IEND") - 4
    return png[:at] + b"".join(extra) + png[at:]


def _ztxt(size: int, key: bytes = b"Comment") -> bytes:
    return _chunk(b"zTXt", key + b"\x00\x00" + zlib.compress(b"\x00" * size, 9))


def _itxt(size: int) -> bytes:
    return _chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + zlib.compress(b"A" * size, 9))


TEXT_BOMBS = {
    "ztxt-before-pixels": lambda: _png_with_chunks([_ztxt(512 * 2**20)]),  # 512 MiB from 0.5 MB
    "itxt-before-pixels": lambda: _png_with_chunks([_itxt(8 * 2**20)]),
    "ztxt-after-pixels": lambda: _png_with_chunks([_ztxt(8 * 2**20)], after_idat=True),
    "many-small-chunks": lambda: _png_with_chunks([_ztxt(2**20 - 64, b"k%d" % i) for i in range(70)]),
}


@pytest.mark.parametrize("name", sorted(TEXT_BOMBS))
def test_png_text_chunk_bomb_is_image_too_large(tmp_path, name):
    path = tmp_path / f"{name}.png"
    path.write_bytes(TEXT_BOMBS[name]())
    with pytest.raises(ImageTooLargeError) as info:
        list(load_source(path, image_dir=tmp_path / "out"))
    assert str(path) in str(info.value) and "decompression bomb" in str(info.value)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="JPEG")
    return buf.getvalue()


BROKEN_IMAGES = {
    "truncated.png": lambda: png_bytes((300, 300), "green")[:-40],
    "half.png": lambda: (lambda b: b[: len(b) // 2])(png_bytes((64, 64), (1, 2, 3))),
    "bad-crc.png": lambda: (lambda b: b[:29] + b"\x00\x00\x00\x00" + b[33:])(png_bytes((8, 8))),
    "bad-ihdr.png": lambda: b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", b"\x00" * 13) + _chunk(b"IEND", b""),
    "no-pixels.png": lambda: png_header_only(16, 16),
    "bomb.png": lambda: png_header_only(60_000, 60_000),
    "truncated.jpg": lambda: _jpeg()[:-200],
    "header-only.jpg": lambda: _jpeg()[:30],
    "garbage.tiff": lambda: b"II*\x00" + b"\xff" * 64,
    "truncated.tiff": lambda: tiff_frames([(64, 64)] * 3, ["red"] * 3)[:500],
    "garbage.webp": lambda: b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16,
}


@pytest.mark.parametrize("name", sorted(BROKEN_IMAGES))
def test_no_pillow_exception_escapes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BROKEN_IMAGES[name]())
    try:
        list(load_source(path, image_dir=tmp_path / "out", max_pixels=10**10))
    except DocumentLoadError as e:
        assert str(path) in str(e)
    # (a damaged image Pillow can still decode is fine too: no exception but DocumentLoadError escapes)


# --------------------------------------------------------------------------- a folder holding a store


@pytest.mark.parametrize("marker", ["pagesight.lock", "chroma.sqlite3+images"])
def test_folder_expansion_skips_pagesight_stores(tmp_path, caplog, marker):
    (tmp_path / "doc.pdf").write_bytes(pdf_bytes(["a document"]))
    store = tmp_path / "idx"
    (store / "images").mkdir(parents=True)
    (store / "images" / "0123-p1.png").write_bytes(png_bytes((8, 8)))
    if marker == "pagesight.lock":
        (store / "pagesight.lock").write_text("")
    else:
        (store / "chroma.sqlite3").write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert expand_sources([tmp_path]) == [str(tmp_path / "doc.pdf")]
        assert expand_sources([store]) == []
    assert "pagesight store" in caplog.text
    with pytest.raises(DocumentLoadError, match="pagesight store"):
        load_source(store)


def test_excluded_folders_are_skipped_wherever_they_are(tmp_path):
    (tmp_path / "doc.pdf").write_bytes(pdf_bytes(["a document"]))
    pages = tmp_path / "page-images"
    pages.mkdir()
    (pages / "x-p1.png").write_bytes(png_bytes((8, 8)))
    assert expand_sources([tmp_path], exclude=[pages]) == [str(tmp_path / "doc.pdf")]
    assert expand_sources([pages / "x-p1.png", pages], exclude=[pages]) == []
    assert expand_sources([tmp_path]) == [str(tmp_path / "doc.pdf"), str(pages / "x-p1.png")]


def test_os_error_codes_have_advice():
    from pagesight.documents._common import describe_os_error

    for code in (errno.EACCES, errno.ELOOP, errno.ENAMETOOLONG, errno.EISDIR, errno.EIO):
        text = describe_os_error(OSError(code, os.strerror(code)))
        assert errno.errorcode[code] in text and ";" in text

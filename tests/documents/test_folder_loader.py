"""expand_sources, load_folder, load_source and is_url."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from doc_factories import image_bytes, pdf_bytes

import pagesight.documents as documents
from pagesight.documents import expand_sources, is_url, load_folder, load_source
from pagesight.errors import (
    DocumentLoadError,
    EmptyDocumentError,
    SourceNotFoundError,
    UnsupportedSourceError,
)

WriteFile = Callable[[str, bytes], Path]


@pytest.fixture
def library(write_file: WriteFile, tmp_path: Path) -> Path:
    """docs/ with PDFs and images at two levels, plus files and folders that must be skipped."""
    write_file("docs/b.pdf", pdf_bytes(["bee one", "bee two"]))
    write_file("docs/A.PDF", pdf_bytes(["ay"]))
    write_file("docs/c.Jpeg", image_bytes((10, 10), "JPEG"))
    write_file("docs/sub/d.png", image_bytes((12, 8), "PNG"))
    write_file("docs/sub/e.tiff", image_bytes((5, 5), "TIFF"))
    write_file("docs/sub/f.webp", image_bytes((6, 6), "WEBP"))
    write_file("docs/.hidden.pdf", pdf_bytes(["secret"]))
    write_file("docs/.git/x.pdf", pdf_bytes(["vcs"]))
    write_file("docs/notes.txt", b"not a document")
    write_file("docs/page.html", b"<p>not loaded from folders</p>")
    return tmp_path / "docs"


def rel(paths: list[str], root: Path) -> list[str]:
    return [os.path.relpath(p, root) for p in paths]


def test_expand_folder_sorted_supported_not_hidden(library: Path) -> None:
    files = expand_sources([str(library)])
    assert rel(files, library) == ["A.PDF", "b.pdf", "c.Jpeg", "sub/d.png", "sub/e.tiff", "sub/f.webp"]
    assert all(os.path.isfile(f) for f in files)


def test_expand_not_recursive(library: Path) -> None:
    assert rel(expand_sources([library], recursive=False), library) == ["A.PDF", "b.pdf", "c.Jpeg"]


def test_expand_keeps_urls_and_paths_in_order_without_duplicates(library: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pdf")
    single = str(library / "b.pdf")
    url = "https://example.org/a.pdf"
    out = expand_sources([url, single, str(library / "sub"), missing, single, url, "notes.docx"])
    assert out == [
        url,
        single,
        *sorted(str(library / "sub" / n) for n in ("d.png", "e.tiff", "f.webp")),
        missing,
        "notes.docx",
    ]


def test_expand_rejects_a_bare_string(library: Path) -> None:
    with pytest.raises(TypeError, match="list"):
        expand_sources(str(library))


def test_load_folder_pages_in_file_order(library: Path, image_dir: Path) -> None:
    pages = list(load_folder(library, image_dir=image_dir, render=False))
    assert [(os.path.relpath(p.source, library), p.page) for p in pages] == [
        ("A.PDF", 1),
        ("b.pdf", 1),
        ("b.pdf", 2),
        ("c.Jpeg", 1),
        ("sub/d.png", 1),
        ("sub/e.tiff", 1),
        ("sub/f.webp", 1),
    ]
    assert pages[2].text == "bee two"
    # images are always written; with render=False only image files produced PNGs
    assert len(list(image_dir.iterdir())) == 4


def test_load_folder_uses_one_staging_folder(library: Path) -> None:
    pages = list(load_folder(library, recursive=False))
    folders = {p.image.parent for p in pages if p.image is not None}
    assert len(folders) == 1 and len(pages) == 4


def test_load_folder_bad_paths(tmp_path: Path, write_file: WriteFile) -> None:
    with pytest.raises(SourceNotFoundError, match=r"nowhere"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(DocumentLoadError, match=r"file\.pdf: is not a folder"):
        load_folder(write_file("file.pdf", pdf_bytes(["x"])))
    (tmp_path / "blank").mkdir()
    write_file("blank/readme.txt", b"x")
    with pytest.raises(
        EmptyDocumentError, match=r"blank: the folder holds no supported files \(\.jpeg, \.jpg"
    ):
        load_folder(tmp_path / "blank")


def test_load_folder_reports_the_bad_file(write_file: WriteFile, tmp_path: Path) -> None:
    write_file("mix/a.pdf", pdf_bytes(["fine"]))
    write_file("mix/b.pdf", b"<html>error page</html>")
    pages = load_folder(tmp_path / "mix", render=False)
    assert next(pages).text == "fine"
    with pytest.raises(DocumentLoadError, match=r"b\.pdf: not a PDF"):
        next(pages)


# ----------------------------------------------------------------------------- load_source, is_url


def test_load_source_dispatch(library: Path, image_dir: Path) -> None:
    pdf = list(load_source(str(library / "A.PDF"), render=False))
    assert [(p.text, p.image) for p in pdf] == [("ay", None)]
    (png,) = load_source(library / "sub" / "d.png", image_dir=image_dir)
    assert (png.width, png.height, png.text) == (12, 8, "")
    assert png.source == str(library / "sub" / "d.png")
    assert len(list(load_source(str(library), render=False))) == 7


def test_load_source_unsupported_extension(library: Path, tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedSourceError, match=r"notes\.txt: unsupported file type '\.txt'; supported: \.jpeg"
    ):
        load_source(str(library / "notes.txt"))
    with pytest.raises(SourceNotFoundError, match=r"absent\.docx"):
        load_source(str(tmp_path / "absent.docx"))
    with pytest.raises(SourceNotFoundError, match=r"absent\.pdf"):
        load_source(str(tmp_path / "absent.pdf"))


def test_load_source_url_schemes() -> None:
    with pytest.raises(UnsupportedSourceError, match=r"ftp://host/a\.pdf: only http:// and https://"):
        load_source("ftp://host/a.pdf")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://example.org/a.pdf", True),
        ("http://localhost:8000", True),
        ("ftp://x/y", True),
        ("docs/a.pdf", False),
        ("/abs/a.pdf", False),
        ("C:\\docs\\a.pdf", False),
        ("a:b.pdf", False),
        ("", False),
    ],
)
def test_is_url(text: str, expected: bool) -> None:
    assert is_url(text) is expected


def test_public_names() -> None:
    for name in documents.__all__:
        assert hasattr(documents, name), name
    for name in (
        "Page",
        "page_id",
        "load_pdf",
        "load_pdf_bytes",
        "load_image",
        "load_url",
        "load_folder",
        "load_source",
        "expand_sources",
        "is_url",
    ):
        assert name in documents.__all__

"""load_pdf / load_pdf_bytes with both renderers, on PDFs generated here."""

from __future__ import annotations

import hashlib
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from doc_factories import many_page_pdf, pdf_bytes, raw_pdf
from PIL import Image

from pagesight.documents import Renderer, load_pdf, load_pdf_bytes, page_id
from pagesight.errors import (
    ConfigurationError,
    CorruptPDFError,
    DocumentLoadError,
    EmptyDocumentError,
    EncryptedPDFError,
    MissingDependencyError,
    NotAPDFError,
    SourceNotFoundError,
)

WriteFile = Callable[[str, bytes], Path]
THREE = ["Alpha first page", "Bravo second page", "Charlie third page"]


def expected_px(points: float, dpi: float) -> int:
    return math.ceil(points * dpi / 72 - 1e-3)


def test_pages_text_images_and_hash(renderer: Renderer, write_file: WriteFile, image_dir: Path) -> None:
    data = pdf_bytes(THREE)
    path = write_file("three.pdf", data)
    pages = list(load_pdf(path, renderer=renderer, image_dir=image_dir))

    assert [p.page for p in pages] == [1, 2, 3]
    assert [p.text for p in pages] == THREE
    digest = hashlib.sha256(data).hexdigest()
    for p in pages:
        assert p.source == str(path)
        assert p.content_hash == digest
        assert p.image == image_dir / f"{digest[:32]}-p{p.page}.png"
        assert p.image.name == f"{page_id(digest, p.page)}.png"
        with Image.open(p.image) as im:
            assert im.format == "PNG"
            assert im.size == (p.width, p.height) == (expected_px(200, 96), expected_px(300, 96))
            assert im.mode == "RGB"
    assert sorted(f.name for f in image_dir.iterdir()) == sorted(p.image.name for p in pages if p.image)


@pytest.mark.parametrize("dpi", [72, 150])
def test_dpi_sets_pixel_size(renderer: Renderer, write_file: WriteFile, image_dir: Path, dpi: int) -> None:
    path = write_file("a.pdf", pdf_bytes(["x"], width=144, height=216))
    (page,) = load_pdf(path, renderer=renderer, dpi=dpi, image_dir=image_dir)
    assert (page.width, page.height) == (2 * dpi, 3 * dpi)
    assert page.image is not None
    with Image.open(page.image) as im:
        assert im.size == (2 * dpi, 3 * dpi)


def test_render_false_gives_size_without_image(
    renderer: Renderer, write_file: WriteFile, tmp_path: Path
) -> None:
    path = write_file("a.pdf", pdf_bytes(THREE))
    out = tmp_path / "never"
    pages = list(load_pdf(path, renderer=renderer, render=False, image_dir=out))
    assert [(p.image, p.width, p.height) for p in pages] == [(None, 267, 400)] * 3
    assert pages[1].text == THREE[1]
    assert not out.exists()


def test_source_name_and_hash_stable_across_loads_and_renderers(write_file: WriteFile) -> None:
    data = pdf_bytes(THREE)
    path = write_file("stable.pdf", data)
    runs = [
        [(p.id, p.content_hash) for p in load_pdf(path, renderer=r, render=False, source="doc://x")]
        for r in ("pymupdf", "pdfium", "pymupdf")
    ]
    assert runs[0] == runs[1] == runs[2]
    assert len({pid for pid, _ in runs[0]}) == 3
    other = write_file("other.pdf", pdf_bytes(["something else", *THREE[1:]]))
    assert next(load_pdf(other, render=False)).content_hash != runs[0][0][1]
    assert next(load_pdf(path, render=False, source="doc://x")).source == "doc://x"


def test_text_normalized_keeps_paragraph_breaks(write_file: WriteFile) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=300, height=300)
    page.insert_text((20, 40), "Heading   with    gaps", fontsize=11)
    page.insert_text((20, 200), "A paragraph far below.", fontsize=11)
    path = write_file("para.pdf", doc.tobytes())
    mu = next(load_pdf(path, renderer="pymupdf", render=False)).text
    assert mu == "Heading with gaps\n\nA paragraph far below."
    pdfium = next(load_pdf(path, renderer="pdfium", render=False)).text
    assert "  " not in pdfium and "\r" not in pdfium
    assert pdfium.split() == mu.split()


def test_streams_one_page_at_a_time(renderer: Renderer, write_file: WriteFile, image_dir: Path) -> None:
    path = write_file("long.pdf", many_page_pdf(300))
    pages = load_pdf(path, renderer=renderer, dpi=36, image_dir=image_dir)
    assert list(image_dir.iterdir()) == []  # nothing rendered before it is asked for

    first = next(pages)
    assert [f.name for f in image_dir.iterdir()] == [first.image.name if first.image else ""]
    second = next(pages)
    assert second.page == 2 and len(list(image_dir.iterdir())) == 2

    # A consumer that deletes each image once used keeps the folder at one file: nothing is cached.
    assert first.image is not None and second.image is not None
    first.image.unlink()
    second.image.unlink()
    count = 2
    for page in pages:
        count += 1
        assert page.page == count
        assert page.image is not None
        assert [f.name for f in image_dir.iterdir()] == [page.image.name]
        page.image.unlink()
    assert count == 300


def test_two_thousand_pages(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("big.pdf", many_page_pdf(2000))
    numbers = [p.page for p in load_pdf(path, renderer=renderer, render=False)]
    assert numbers == list(range(1, 2001))


def test_image_only_page_warns_and_is_kept(
    renderer: Renderer, write_file: WriteFile, image_dir: Path
) -> None:
    path = write_file("scan.pdf", pdf_bytes(["has text", None, "more text"]))
    summary = r"scan\.pdf: 1 page\(s\) have no text layer .*\(page 2\); indexed as"  # once per source
    with pytest.warns(UserWarning, match=summary):
        pages = list(load_pdf(path, renderer=renderer, image_dir=image_dir))
    assert [p.page for p in pages] == [1, 2, 3]
    assert pages[1].text == ""
    assert pages[1].image is not None
    with Image.open(pages[1].image) as im:  # the image-only page is rendered: mostly red inside
        r, g, b = im.convert("RGB").getpixel((im.width // 2, im.height // 2))  # type: ignore[misc]
        assert r > 200 and g < 60 and b < 60


def test_no_warning_when_every_page_has_text(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("ok.pdf", pdf_bytes(THREE))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(load_pdf(path, renderer=renderer, render=False))


# ----------------------------------------------------------------------------- bad input


def test_missing_file(renderer: Renderer, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"nope\.pdf"):
        load_pdf(tmp_path / "nope.pdf", renderer=renderer)


def test_directory(renderer: Renderer, tmp_path: Path) -> None:
    folder = tmp_path / "docs.pdf"
    folder.mkdir()
    with pytest.raises(DocumentLoadError, match=r"docs\.pdf: is a directory; pass the folder to load_folder"):
        load_pdf(folder, renderer=renderer)


def test_empty_file(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("empty.pdf", b"")
    with pytest.raises(EmptyDocumentError, match=r"empty\.pdf.*empty"):
        load_pdf(path, renderer=renderer)


def test_html_saved_as_pdf(renderer: Renderer, write_file: WriteFile) -> None:
    html = b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>"
    path = write_file("report.pdf", html)
    with pytest.raises(NotAPDFError, match=r"report\.pdf: not a PDF: it holds HTML"):
        load_pdf(path, renderer=renderer)


def test_binary_that_is_not_pdf(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("photo.pdf", b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(NotAPDFError, match=r"photo\.pdf: not a PDF: no %PDF- header"):
        load_pdf(path, renderer=renderer)


def test_pdf_header_then_garbage(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(CorruptPDFError, match=r"garbage\.pdf"):
        list(load_pdf(path, renderer=renderer))


def test_encrypted_without_password(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("secret.pdf", pdf_bytes(THREE, encrypt=("user-pw", "owner-pw")))
    with pytest.raises(EncryptedPDFError, match=r"secret\.pdf: the PDF is encrypted; pass password="):
        load_pdf(path, renderer=renderer)


def test_encrypted_wrong_password(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("secret.pdf", pdf_bytes(THREE, encrypt=("user-pw", "owner-pw")))
    with pytest.raises(EncryptedPDFError, match=r"secret\.pdf: .*the password is wrong"):
        load_pdf(path, renderer=renderer, password="guess")


@pytest.mark.parametrize("password", ["user-pw", "owner-pw"])
def test_encrypted_right_password(renderer: Renderer, write_file: WriteFile, password: str) -> None:
    path = write_file("secret.pdf", pdf_bytes(THREE, encrypt=("user-pw", "owner-pw")))
    pages = list(load_pdf(path, renderer=renderer, password=password, render=False))
    assert [p.text for p in pages] == THREE


def test_zero_pages(renderer: Renderer, write_file: WriteFile) -> None:
    data = raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    path = write_file("nothing.pdf", data)
    with pytest.raises(EmptyDocumentError, match=r"nothing\.pdf: the PDF has no pages"):
        load_pdf(path, renderer=renderer)


@pytest.mark.parametrize("keep", [0.3, 0.5])
def test_truncated_pdf_is_refused_not_indexed_blank(
    renderer: Renderer, write_file: WriteFile, keep: float
) -> None:
    data = pdf_bytes(THREE)
    path = write_file("cut.pdf", data[: int(len(data) * keep)])
    with pytest.raises(CorruptPDFError, match=r"cut\.pdf: .*(damaged|truncated)"):
        load_pdf(path, renderer=renderer)


def test_truncated_pdf_blank_pages_named(write_file: WriteFile) -> None:
    data = pdf_bytes(THREE)
    path = write_file("half.pdf", data[: len(data) // 2])
    with pytest.raises(CorruptPDFError, match=r"after repair [12] of 3 pages are blank \(pages (2, )?3\)"):
        load_pdf(path, renderer="pymupdf")


def test_repaired_pdf_with_all_content_loads_with_warning(write_file: WriteFile) -> None:
    data = pdf_bytes(THREE)
    path = write_file("tail.pdf", data[: int(len(data) * 0.95)])  # xref table and trailer lost
    with pytest.warns(UserWarning, match=r"tail\.pdf was damaged and repaired"):
        pages = list(load_pdf(path, renderer="pymupdf", render=False))
    assert [p.text for p in pages] == THREE


def test_page_that_fails_to_render_names_the_page(
    renderer: Renderer, write_file: WriteFile, image_dir: Path
) -> None:
    content = b"BT /F1 12 Tf 10 50 Td (Hello) Tj ET"
    page = (
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {s} {s}] /Contents 3 0 R "
        "/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    data = raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [5 0 R 6 0 R] /Count 2 >>",
            b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            page.format(s=100).encode(),
            page.format(s=14400).encode(),  # 240,000 px square at 1200 dpi: no renderer allocates that
        ]
    )
    path = write_file("huge.pdf", data)
    pages = load_pdf(path, renderer=renderer, dpi=1200, image_dir=image_dir)
    assert next(pages).text == "Hello"
    with pytest.raises(DocumentLoadError, match=r"huge\.pdf \(page 2\): .*lower dpi=") as info:
        next(pages)
    assert info.value.page == 2
    assert [f.name for f in image_dir.iterdir() if f.name.endswith(".tmp")] == []


# ----------------------------------------------------------------------------- bytes, options, dependencies


def test_load_pdf_bytes(renderer: Renderer, image_dir: Path) -> None:
    data = pdf_bytes(THREE)
    pages = list(load_pdf_bytes(data, source="https://x/y.pdf", renderer=renderer, image_dir=image_dir))
    assert [(p.source, p.page, p.text) for p in pages] == [
        ("https://x/y.pdf", i + 1, t) for i, t in enumerate(THREE)
    ]
    assert pages[0].content_hash == hashlib.sha256(data).hexdigest()
    assert all(p.image is not None and p.image.exists() for p in pages)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", EmptyDocumentError, "empty"),
        (b"<html><body>Login required</body></html>", NotAPDFError, "it holds HTML"),
    ],
)
def test_load_pdf_bytes_bad(renderer: Renderer, data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=rf"https://x/y\.pdf: .*{match}"):
        load_pdf_bytes(data, source="https://x/y.pdf", renderer=renderer)


@pytest.mark.parametrize(
    ("options", "match"), [({"dpi": 0}, "`dpi`"), ({"renderer": "poppler"}, "`renderer`")]
)
def test_bad_options(write_file: WriteFile, options: dict[str, Any], match: str) -> None:
    path = write_file("a.pdf", pdf_bytes(["x"]))
    with pytest.raises(ConfigurationError, match=match):
        load_pdf(path, **options)


def test_missing_renderer_names_extra_and_alternative(
    monkeypatch: pytest.MonkeyPatch, write_file: WriteFile
) -> None:
    path = write_file("a.pdf", pdf_bytes(["only pdfium left"]))
    monkeypatch.setitem(sys.modules, "pymupdf", None)  # makes `import pymupdf` fail as if not installed
    with pytest.raises(
        MissingDependencyError, match=r'pagesight\[pdf\]".*renderer=.pdfium.*pagesight\[pdfium\]'
    ):
        load_pdf(path, renderer="pymupdf")
    # renderer=None falls back to pdfium: pdfium's text has single newlines only, and it loads.
    assert next(load_pdf(path, render=False)).text == "only pdfium left"
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    with pytest.raises(MissingDependencyError, match=r"pagesight\[pdf\].*pagesight\[pdfium\]"):
        load_pdf(path)


def test_threads_render_different_documents(
    renderer: Renderer, write_file: WriteFile, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = [write_file(f"t{i}.pdf", pdf_bytes([f"doc {i} page {j}" for j in range(8)])) for i in range(4)]

    def load(i: int) -> list[tuple[str, int, int]]:
        pages = load_pdf(paths[i], renderer=renderer, dpi=50, image_dir=tmp_path / f"out{i}")
        return [(p.text, p.width, p.height) for p in pages]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(load, range(4)))
    assert results == [load(i) for i in range(4)]
    assert results[2][5][0] == "doc 2 page 5"


def test_normalize_text() -> None:
    from pagesight.documents._common import normalize_text

    raw = "  ﬁrst   line\r\nsoft\u00adware\tthing\r\n\r\n\r\n\r\nnext\x00 para  "
    assert normalize_text(raw) == "first line\nsoftware thing\n\nnext para"


def test_temporary_page_folders_stay_while_running_and_are_gone_after(tmp_path: Path) -> None:
    """Without image_dir the PNGs stay readable for the whole run and nothing is left afterwards."""
    import subprocess

    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(pdf_bytes(["first page", "second page"]))
    temp = tmp_path / "temp"
    temp.mkdir()
    script = (
        "import gc, sys\n"
        "from pagesight.documents import load_pdf, load_source\n"
        "pages = list(load_pdf(sys.argv[1], ocr='never'))\n"
        "first = next(load_source(sys.argv[1], ocr='never'))  # a generator left unfinished\n"
        "gc.collect()\n"
        "for p in [*pages, first]:\n"
        "    assert p.image is not None and p.image.stat().st_size > 0, p\n"
        "    print(p.image)\n"
    )
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(pdf)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    images = [Path(line) for line in done.stdout.splitlines()]
    assert len(images) == 3 and all(p.parent.parent == temp for p in images), images
    assert all(p.parent.name.startswith("pagesight-pages-") for p in images)
    assert list(temp.glob("pagesight-*")) == []  # (PyMuPDF leaves a .ses file of its own there)

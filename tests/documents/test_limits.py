"""Resource limits of the PDF loader: pages per document, pixels per page image, text per page (issue 6).

Each limit has a documented default and a keyword to raise it; exceeding it raises a typed error
naming the file, the limit and how to raise it (text is cut with a warning instead).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from doc_factories import many_page_pdf, pdf_bytes

from pagesight.documents import Renderer
from pagesight.documents.images import DEFAULT_MAX_PIXELS
from pagesight.documents.pdf import DEFAULT_MAX_CHARS_PER_PAGE, DEFAULT_MAX_PAGES, load_pdf, load_pdf_bytes
from pagesight.errors import ConfigurationError, DocumentLoadError, ImageTooLargeError

WriteFile = Callable[[str, bytes], Path]


@pytest.fixture(scope="module")
def fifty_thousand_pages() -> bytes:
    return many_page_pdf(50_000)


def test_documented_defaults() -> None:
    assert DEFAULT_MAX_PAGES == 10_000
    assert DEFAULT_MAX_CHARS_PER_PAGE == 200_000
    assert DEFAULT_MAX_PIXELS == 89_478_485


def test_fifty_thousand_pages_refused_before_rendering(
    renderer: Renderer, write_file: WriteFile, tmp_path: Path, fifty_thousand_pages: bytes
) -> None:
    path = write_file("huge.pdf", fifty_thousand_pages)
    images = tmp_path / "images"
    start = time.perf_counter()
    with pytest.raises(DocumentLoadError) as info:
        load_pdf(path, renderer=renderer, image_dir=images)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"refusing took {elapsed:.2f} s: pages must not be touched"
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "50,000 pages" in message and "max_pages=10,000" in message and "max_pages=50000" in message
    assert info.value.page is None
    assert not images.exists() or not list(images.iterdir())

    with pytest.raises(DocumentLoadError, match=r"https://example\.org/huge\.pdf: .*max_pages=10,000"):
        load_pdf_bytes(fifty_thousand_pages, source="https://example.org/huge.pdf", renderer=renderer)


def test_max_pages_override(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("twelve.pdf", many_page_pdf(12))
    with pytest.raises(DocumentLoadError, match=r"12 pages, more than the limit of max_pages=11"):
        load_pdf(path, renderer=renderer, render=False, max_pages=11)
    pages = list(load_pdf(path, renderer=renderer, render=False, max_pages=12))
    assert [p.page for p in pages] == list(range(1, 13))


def test_huge_page_refused_before_rendering(
    renderer: Renderer, write_file: WriteFile, tmp_path: Path
) -> None:
    # 14,400 pt (200 inches, the PDF maximum) square: 19,200 x 19,200 pixels at 96 dpi (368 million).
    path = write_file("poster.pdf", pdf_bytes(["a poster", "small"], width=14_400, height=14_400))
    images = tmp_path / "images"
    pages = load_pdf(path, renderer=renderer, image_dir=images)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        next(pages)
    assert time.perf_counter() - start < 2.0
    assert info.value.page == 1
    message = str(info.value)
    assert message.startswith(f"{path} (page 1): ")
    assert "19200x19200" in message and f"max_pixels={DEFAULT_MAX_PIXELS:,}" in message
    assert "lower dpi=" in message
    assert not list(images.glob("*.png"))

    # Nothing rendered, nothing refused; a low dpi fits under the limit.
    assert [p.width for p in load_pdf(path, renderer=renderer, render=False)] == [19_200, 19_200]
    assert next(load_pdf(path, renderer=renderer, render=False, dpi=9)).width == 1800


def test_max_pixels_override(renderer: Renderer, write_file: WriteFile, tmp_path: Path) -> None:
    path = write_file("page.pdf", pdf_bytes(["text"]))  # 200 x 300 pt: 267 x 400 = 106,800 px at 96 dpi
    with pytest.raises(ImageTooLargeError, match=r"267x400 = 106,800 pixels, more than max_pixels=100,000"):
        next(load_pdf(path, renderer=renderer, image_dir=tmp_path / "a", max_pixels=100_000))
    page = next(load_pdf(path, renderer=renderer, image_dir=tmp_path / "b", max_pixels=106_800))
    assert (page.width, page.height) == (267, 400) and page.image is not None and page.image.is_file()


def test_long_text_is_cut_with_a_warning(renderer: Renderer, write_file: WriteFile) -> None:
    path = write_file("words.pdf", pdf_bytes(["alpha beta gamma delta", "short"]))
    with pytest.warns(
        UserWarning, match=r"words\.pdf page 1: text of 2\d characters cut to max_chars_per_page=10"
    ):
        pages = list(load_pdf(path, renderer=renderer, render=False, max_chars_per_page=10))
    assert pages[0].text == "alpha beta"
    assert pages[1].text == "short"
    full = list(load_pdf(path, renderer=renderer, render=False))
    assert full[0].text == "alpha beta gamma delta"


@pytest.mark.parametrize("name", ["max_pages", "max_pixels", "max_chars_per_page"])
@pytest.mark.parametrize("value", [0, -5, 2.5, True])
def test_bad_limit_values(write_file: WriteFile, name: str, value: object) -> None:
    path = write_file("ok.pdf", pdf_bytes(["ok"]))
    with pytest.raises(ConfigurationError, match=f"`{name}` must be a whole number"):
        load_pdf(path, **{name: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=f"`{name}` must be a whole number"):
        load_pdf_bytes(path.read_bytes(), source="ok.pdf", **{name: value})  # type: ignore[arg-type]


@pytest.mark.enable_socket
@pytest.mark.parametrize("entry", ["load_source", "load_folder", "load_url"])
def test_every_loader_passes_the_pdf_limits_on(entry: str, tmp_path: Path) -> None:
    from pagesight.documents import load_folder, load_source
    from pagesight.documents.url import load_url
    from tests.http_server import LoopbackHTTPServer, Route

    data = pdf_bytes(["alpha beta gamma delta", "short"])  # 200 x 300 pt: 106,800 px at 96 dpi
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "words.pdf").write_bytes(data)
    with LoopbackHTTPServer({"/words.pdf": Route(data, content_type="application/pdf")}) as server:
        load: Callable[..., object] = {
            "load_source": lambda **kw: load_source(folder / "words.pdf", **kw),
            "load_folder": lambda **kw: load_folder(folder, **kw),
            "load_url": lambda **kw: load_url(server.url("/words.pdf"), allow_private=True, **kw),
        }[entry]
        with pytest.raises(DocumentLoadError, match=r"2 pages, more than the limit of max_pages=1"):
            list(load(render=False, max_pages=1))  # type: ignore[call-overload]
        with pytest.raises(ImageTooLargeError, match=r"more than max_pixels=100,000"):
            list(load(image_dir=tmp_path / "img", max_pixels=100_000))  # type: ignore[call-overload]
        with pytest.warns(UserWarning, match=r"cut to max_chars_per_page=10"):
            pages = list(load(render=False, max_chars_per_page=10))  # type: ignore[call-overload]
    assert [p.text for p in pages] == ["alpha beta", "short"]

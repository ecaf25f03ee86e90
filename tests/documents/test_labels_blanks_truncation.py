"""Issue 15 items 5, 10 and 11 at the loader: printed page labels, blank pages summarized once per
source, and a truncated PDF named as damaged or truncated. Every PDF is generated here, and every
test runs with both renderers."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from ocr_factories import CountingEngine, needs_tesseract

from pagesight.documents import Renderer, load_pdf, load_pdf_bytes
from pagesight.errors import CorruptPDFError, EmptyDocumentError


def labelled_pdf(path: Path) -> Path:
    """Six pages printed i, ii, 1, 2, 3, A-1 (a front matter, a body and an appendix)."""
    import pymupdf

    doc = pymupdf.open()
    for i in range(6):
        doc.new_page(width=300, height=400).insert_text((30, 50), f"Body text of page index {i + 1}.")
    doc.set_page_labels(
        [
            {"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1},
            {"startpage": 2, "prefix": "", "style": "D", "firstpagenum": 1},
            {"startpage": 5, "prefix": "A-", "style": "D", "firstpagenum": 1},
        ]
    )
    doc.save(str(path))
    doc.close()
    return path


def separated_pdf(path: Path) -> Path:
    """Text, blank, blank, a drawing without text, blank (an empty text box), text."""
    import pymupdf

    doc = pymupdf.open()
    for kind in ("text", "blank", "blank", "drawing", "empty-box", "text"):
        page = doc.new_page(width=300, height=400)
        if kind == "text":
            page.insert_text((30, 50), "A page about harbour tides and ferries.")
        elif kind == "drawing":
            page.draw_rect(pymupdf.Rect(40, 40, 260, 360), color=(0, 0, 1), fill=(0.2, 0.4, 0.9))
        elif kind == "empty-box":
            page.insert_textbox(pymupdf.Rect(30, 30, 270, 370), "   ", fontsize=11)
    doc.save(str(path))
    doc.close()
    return path


def _loaded(path: Path, renderer: Renderer, **options: object) -> tuple[list, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pages = list(load_pdf(path, renderer=renderer, **options))  # type: ignore[arg-type]
    return pages, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- item 5: page labels


def test_both_renderers_read_the_printed_page_labels(tmp_path: Path, renderer: Renderer) -> None:
    pages, _ = _loaded(labelled_pdf(tmp_path / "book.pdf"), renderer, render=False, ocr="never")
    assert [p.page for p in pages] == [1, 2, 3, 4, 5, 6]  # the index stays the page number (and the id)
    assert [p.page_label for p in pages] == ["i", "ii", "1", "2", "3", "A-1"]
    assert pages[3].id.endswith("-p4")


def test_a_pdf_without_labels_gives_none(tmp_path: Path, renderer: Renderer) -> None:
    pages, _ = _loaded(separated_pdf(tmp_path / "plain.pdf"), renderer, render=False, ocr="never")
    assert [p.page_label for p in pages] == [None] * 6


def test_labels_survive_bytes_loading(tmp_path: Path, renderer: Renderer) -> None:
    data = labelled_pdf(tmp_path / "book.pdf").read_bytes()
    pages = list(load_pdf_bytes(data, source="https://example.org/book.pdf", renderer=renderer, render=False))
    assert pages[2].page_label == "1" and pages[5].page_label == "A-1"


# --------------------------------------------------------------------------- item 11: blank pages


def test_blank_pages_are_kept_and_summarized_once(tmp_path: Path, renderer: Renderer) -> None:
    path = separated_pdf(tmp_path / "scan.pdf")
    pages, messages = _loaded(path, renderer, image_dir=tmp_path / "img", ocr="never")
    assert [p.page for p in pages] == [1, 2, 3, 4, 5, 6]  # kept: page numbers and ids match the PDF
    assert all(p.image is not None and p.image.is_file() for p in pages)
    assert messages == [
        f"{path}: 3 blank page(s) kept (pages 2, 3, 5): no text and nothing drawn; they keep their page "
        "numbers and are not OCR'd",
        f"{path}: 1 page(s) have no text layer (page 4); indexed as images only (OCR is off)",
    ]
    assert not any(" page 2 has no text layer" in m for m in messages)  # no line per page


@needs_tesseract
def test_blank_pages_are_not_ocrd(tmp_path: Path, renderer: Renderer) -> None:
    path = separated_pdf(tmp_path / "scan.pdf")
    engine = CountingEngine()
    pages, messages = _loaded(path, renderer, image_dir=tmp_path / "img", ocr_engine=engine)
    assert engine.calls == 1  # only the drawing; the three blank pages are not sent to the engine
    assert len(pages) == 6
    assert [m for m in messages if "blank" in m or "no text layer" in m] == [
        f"{path}: 3 blank page(s) kept (pages 2, 3, 5): no text and nothing drawn; they keep their page "
        "numbers and are not OCR'd",
        f"{path}: 1 page(s) have no text layer and OCR found no text on them (page 4); "
        "indexed as images only",
    ]


def test_a_nearly_white_scan_is_blank_but_a_faint_drawing_is_not(tmp_path: Path, renderer: Renderer) -> None:
    import pymupdf

    doc = pymupdf.open()
    speck = doc.new_page(width=300, height=400)  # a scanned empty sheet: one dust speck
    speck.draw_rect(pymupdf.Rect(100, 100, 101, 101), color=(0.3, 0.3, 0.3), fill=(0.3, 0.3, 0.3))
    lines = doc.new_page(width=300, height=400)  # a form without text: ruled lines
    for y in range(60, 360, 20):
        lines.draw_line((30, y), (270, y), color=(0, 0, 0), width=1)
    doc.save(str(tmp_path / "two.pdf"))
    _, messages = _loaded(tmp_path / "two.pdf", renderer, render=False, ocr="never")
    assert any("1 blank page(s) kept (page 1)" in m for m in messages), messages
    assert any("1 page(s) have no text layer (page 2)" in m for m in messages), messages


# --------------------------------------------------------------------------- item 10: truncated PDFs


@pytest.mark.parametrize("share", [0.1, 0.25, 0.6])
def test_a_truncated_pdf_is_called_damaged_or_truncated(
    tmp_path: Path, renderer: Renderer, share: float
) -> None:
    import pymupdf

    doc = pymupdf.open()
    for i in range(4):
        doc.new_page().insert_text((72, 72), f"Page {i + 1} of a report that was cut short in transit.")
    # compressed object streams, as most PDF writers make them: the page tree sits near the end
    data = doc.tobytes(garbage=3, deflate=True, use_objstms=1)
    path = tmp_path / "report.pdf"
    path.write_bytes(data[: int(len(data) * share)])
    with pytest.raises(CorruptPDFError) as info:
        list(load_pdf(path, renderer=renderer, render=False))
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "damaged or truncated" in message
    assert "again" in message  # what to do: download, copy or export it again
    assert "has no pages" not in message


def test_a_complete_pdf_with_an_empty_page_tree_still_says_no_pages(
    tmp_path: Path, renderer: Renderer
) -> None:
    from doc_factories import raw_pdf

    path = tmp_path / "zero.pdf"
    path.write_bytes(raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]))
    with pytest.raises(EmptyDocumentError, match="no pages"):
        list(load_pdf(path, renderer=renderer, render=False))

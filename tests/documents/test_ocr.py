"""OCR in the document layer: scanned and photographed pages, raster figures, languages, cache, bad input."""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from doc_factories import RENDERERS
from ocr_factories import (
    CountingEngine,
    image_only_pdf,
    label_png,
    needs_tesseract,
    photographed,
    tesseract_has,
    text_pdf,
    text_png,
)
from PIL import Image

from pagesight.documents import load_image, load_pdf, load_source
from pagesight.documents.ocr import (
    DEFAULT_OCR_DPI,
    OCR_INSTALL_HINT,
    OcrCache,
    OcrResult,
    OcrWord,
    TesseractEngine,
    _join_words,
    needs_ocr,
    ocr_image,
    pick_engine,
    read_words,
    words_path,
)
from pagesight.errors import ConfigurationError, ImageTooLargeError, MissingDependencyError

PAGES = [
    "Greenhouse tomatoes need pruning every week. Remove the side shoots so the plant grows tall.",
    "The invoice total is payable within thirty days. Late payment adds interest of two percent.",
]


def _rapidocr_imports() -> bool:
    try:
        import rapidocr_onnxruntime  # noqa: F401  (OpenCV inside needs libGL on Linux)
    except Exception:
        return False
    return True


def _words(text: str) -> set[str]:
    return {w.strip(".,;:").lower() for w in text.split()}


# --------------------------------------------------------------------------- the rule


def test_needs_ocr_rule_from_measured_pages() -> None:
    letter = (612.0, 792.0)
    assert needs_ocr("", *letter, image_coverage=0.0)  # nothing at all
    assert needs_ocr("  \n ", *letter, image_coverage=1.0)
    # a title page (31-58 characters, the thinnest real pages in eval/) keeps its layer
    assert not needs_ocr("Debian FAQ  The Debian FAQ Authors version 12", *letter, image_coverage=0.0)
    # a scan with a stamp: a page-sized image and a few words of text
    assert needs_ocr("CONFIDENTIAL  received 2024-03-01", *letter, image_coverage=0.98)
    # a scan that already has a proper OCR layer (about 20 characters per square inch) keeps it
    assert not needs_ocr("word " * 500, *letter, image_coverage=1.0)


def test_cjk_words_join_without_spaces() -> None:
    assert _join_words(["日", "本", "語", "OCR", "test"]) == "日本語 OCR test"


def test_unknown_engine_and_bad_language_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ocr_engine"):
        pick_engine("abbyy")
    path = tmp_path / "a.pdf"
    path.write_bytes(text_pdf(["x"]))
    with pytest.raises(ConfigurationError, match="ocr_lang"):
        load_pdf(path, ocr_lang="eng; rm -rf /")
    with pytest.raises(ConfigurationError, match="`ocr`"):
        load_pdf(path, ocr="sometimes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- scanned pages


@needs_tesseract
@pytest.mark.parametrize("renderer", RENDERERS)
def test_image_only_pdf_gets_its_text_from_ocr(tmp_path: Path, renderer: str) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_only_pdf(text_pdf(PAGES), dpi=150))
    before = list(load_pdf(path, renderer=renderer, ocr="never", image_dir=tmp_path / "a"))  # type: ignore[arg-type]
    assert [p.text for p in before] == ["", ""]  # what indexing saw before OCR

    pages = list(load_pdf(path, renderer=renderer, image_dir=tmp_path / "b"))  # type: ignore[arg-type]
    assert [p.text_source for p in pages] == ["ocr", "ocr"]
    assert {"greenhouse", "tomatoes", "pruning", "shoots"} <= _words(pages[0].text)
    assert {"invoice", "total", "payable", "interest"} <= _words(pages[1].text)
    # word boxes, in the stored page image's pixels, beside the image
    assert pages[0].image is not None
    words = read_words(pages[0].image)
    assert words is not None and any(w.text.lower().startswith("greenhouse") for w in words)
    for w in words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= pages[0].width + 1 and 0 <= y0 < y1 <= pages[0].height + 1


@needs_tesseract
def test_photographed_page_is_read(tmp_path: Path) -> None:
    path = tmp_path / "photo.pdf"
    path.write_bytes(image_only_pdf(text_pdf(PAGES[:1]), dpi=150, transform=photographed))
    [page] = list(load_pdf(path, image_dir=tmp_path / "i"))
    assert page.text_source == "ocr"
    assert len({"greenhouse", "tomatoes", "pruning", "week", "plant", "grows"} & _words(page.text)) >= 4


@needs_tesseract
def test_text_layer_pages_are_not_ocrd(tmp_path: Path) -> None:
    path = tmp_path / "text.pdf"
    path.write_bytes(text_pdf(PAGES))
    engine = CountingEngine()
    pages = list(load_pdf(path, ocr_engine=engine, image_dir=tmp_path / "i"))
    assert engine.calls == 0 and [p.text_source for p in pages] == ["layer", "layer"]
    pages = list(load_pdf(path, ocr="always", ocr_engine=engine, image_dir=tmp_path / "j"))
    assert engine.calls == 2 and [p.text_source for p in pages] == ["both", "both"]


@needs_tesseract
@pytest.mark.skipif(not tesseract_has("deu"), reason="Tesseract has no German pack (tesseract-ocr-deu)")
def test_german_page(tmp_path: Path) -> None:
    text = "Die Größe der Straße wird gemessen. Übermäßige Hitze schadet den Blättern im Frühjahr."
    path = tmp_path / "de.pdf"
    path.write_bytes(image_only_pdf(text_pdf([text]), dpi=150))
    [page] = list(load_pdf(path, ocr_lang="deu", image_dir=tmp_path / "i"))
    found = _words(page.text)
    assert {"größe", "straße", "übermäßige", "blättern"} <= found


@needs_tesseract
@pytest.mark.skipif(not tesseract_has("jpn"), reason="Tesseract has no Japanese pack (tesseract-ocr-jpn)")
def test_japanese_page(tmp_path: Path) -> None:
    path = tmp_path / "ja.pdf"
    path.write_bytes(
        image_only_pdf(text_pdf(["東京都の天気は晴れです。"], fontname="japan", fontsize=22), dpi=150)
    )
    [page] = list(load_pdf(path, ocr_lang="jpn", image_dir=tmp_path / "i"))
    assert page.text_source == "ocr"
    assert "東京" in page.text and "天気" in page.text  # no spaces between the characters


@needs_tesseract
def test_missing_language_pack_names_the_package(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(text_pdf(["x"]))
    with pytest.raises(ConfigurationError, match="tesseract-ocr-kor"):
        load_pdf(path, ocr_lang="kor+eng")


# --------------------------------------------------------------------------- figures and images


@needs_tesseract
def test_raster_figure_label_is_appended(tmp_path: Path) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=500)
    page.insert_textbox(pymupdf.Rect(20, 20, 380, 120), "Figure 3 shows the sensor wiring.", fontsize=12)
    page.insert_image(pymupdf.Rect(40, 150, 360, 250), stream=label_png("FLUXGATE 42"))
    path = tmp_path / "fig.pdf"
    path.write_bytes(doc.tobytes())

    [page_] = list(load_pdf(path, image_dir=tmp_path / "a"))
    assert page_.text_source == "both"
    assert page_.text.startswith("Figure 3 shows the sensor wiring.")
    assert "FLUXGATE" in page_.text
    [plain] = list(load_pdf(path, ocr_figures=False, image_dir=tmp_path / "b"))
    assert plain.text_source == "layer" and "FLUXGATE" not in plain.text


@needs_tesseract
@pytest.mark.parametrize("renderer", RENDERERS)
def test_raster_figure_label_is_found_on_a_rotated_page(tmp_path: Path, renderer: str) -> None:
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=500)
    page.set_rotation(90)  # shown turned: 500 x 400; the figure box must be turned with the render
    page.insert_textbox(pymupdf.Rect(20, 20, 380, 120), "Figure 3 shows the sensor wiring.", fontsize=12)
    page.insert_image(pymupdf.Rect(40, 150, 360, 250), stream=label_png("FLUXGATE 42"))  # upright as shown
    path = tmp_path / "turned.pdf"
    path.write_bytes(doc.tobytes())
    assert pymupdf.open(path)[0].rotation == 90
    [page_] = list(load_pdf(path, renderer=renderer, image_dir=tmp_path / "a"))
    assert page_.width > page_.height  # rendered turned (500 x 400 pt)
    assert page_.text_source == "both" and "FLUXGATE" in page_.text, page_.text


@needs_tesseract
def test_image_file_gets_ocr_text(tmp_path: Path) -> None:
    path = tmp_path / "note.png"
    path.write_bytes(text_png(["Backup the database every night", "before the upgrade"]))
    [page] = list(load_source(path, image_dir=tmp_path / "i"))
    assert page.text_source == "ocr"
    assert {"backup", "database", "night", "upgrade"} <= _words(page.text)
    [never] = list(load_source(path, ocr="never", image_dir=tmp_path / "j"))
    assert never.text == "" and never.text_source == "layer"


@needs_tesseract
def test_ocr_text_is_cut_to_max_chars_per_page(http_server, tmp_path: Path) -> None:
    from http_server import Route

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(image_only_pdf(text_pdf(PAGES[:1]), dpi=120))
    note = tmp_path / "note.png"
    note.write_bytes(text_png(["Backup the database every night", "before the upgrade"]))
    http_server.add("/note.png", Route(body=note.read_bytes(), content_type="image/png"))
    loads = {
        "scan.pdf": lambda **kw: load_pdf(scan, image_dir=tmp_path / "a", **kw),
        "note.png": lambda **kw: load_image(note, image_dir=tmp_path / "b", **kw),
        "/note.png": lambda **kw: load_source(http_server.url("/note.png"), image_dir=tmp_path / "c", **kw),
    }
    for name, load in loads.items():
        [whole] = list(load())
        assert len(whole.text) > 20 and whole.text_source == "ocr"
        with pytest.warns(
            UserWarning, match=rf"{name} page 1: text of \d+ characters cut to max_chars_per_page=20"
        ):
            [cut] = list(load(max_chars_per_page=20))
        assert cut.text == whole.text[:20]


# --------------------------------------------------------------------------- cache


@needs_tesseract
def test_cache_second_run_calls_no_engine(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_only_pdf(text_pdf(PAGES), dpi=120))
    engine = CountingEngine()
    first = list(load_pdf(path, ocr_engine=engine, ocr_cache=tmp_path / "cache", image_dir=tmp_path / "a"))
    assert engine.calls == 2
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 2
    second = list(load_pdf(path, ocr_engine=engine, ocr_cache=tmp_path / "cache", image_dir=tmp_path / "b"))
    assert engine.calls == 2  # nothing OCR'd again
    assert [p.text for p in second] == [p.text for p in first]
    # a damaged cache file is a miss, not an error
    next((tmp_path / "cache").rglob("*.json")).write_text("{not json")
    list(load_pdf(path, ocr_engine=engine, ocr_cache=tmp_path / "cache", image_dir=tmp_path / "c"))
    assert engine.calls == 3


HOSTILE_ENTRIES = [
    "[]",
    '"x"',
    "1",
    "null",
    '{"words": 5}',
    '{"text": 3, "words": []}',
    '{"words": [["w", 0, 0, "1", 1, 90]]}',
    '{"words": [["w", 0, 0, NaN, 1, 90]]}',
    '{"words": [["w", 0, 0, 1e999, 1, 90]]}',
    '{"words": [["w", 0, 0, 1]]}',
    '{"words": [3]}',
]


@needs_tesseract
@pytest.mark.parametrize("entry", HOSTILE_ENTRIES)
def test_a_hostile_cache_entry_is_a_miss_with_a_warning(
    tmp_path: Path, entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    png = tmp_path / "note.png"
    png.write_bytes(text_png(["Backup the database every night"]))
    engine = CountingEngine()
    key = OcrCache.key(Image.open(png), engine, "eng")
    (tmp_path / "cache" / key[:2]).mkdir(parents=True)
    (tmp_path / "cache" / key[:2] / f"{key}.json").write_text(entry)
    assert OcrCache(tmp_path / "cache").get(key) is None
    assert "ignoring the damaged OCR cache entry" in caplog.text
    [page] = list(load_image(png, ocr_engine=engine, ocr_cache=tmp_path / "cache", image_dir=tmp_path / "i"))
    assert engine.calls == 1 and "database" in _words(page.text)  # OCR'd again, entry replaced
    assert OcrCache(tmp_path / "cache").get(key) is not None


@pytest.mark.parametrize("entry", HOSTILE_ENTRIES)
def test_hostile_word_boxes_beside_an_image_are_ignored(
    tmp_path: Path, entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    image = tmp_path / "ab" / "p1.png"
    image.parent.mkdir()
    Image.new("L", (20, 20), 255).save(image)
    words_path(image).write_text(entry)
    assert read_words(image) is None
    assert "ignoring the damaged OCR word boxes" in caplog.text
    words_path(image).write_text('{"text": "", "engine": "t", "words": [["ok", 1, 2, 3.5, 4, 90]]}')
    assert read_words(image) == [OcrWord("ok", (1.0, 2.0, 3.5, 4.0), 90.0)]


@needs_tesseract
def test_cache_subfolder_that_is_a_symlink_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    png = tmp_path / "note.png"
    png.write_bytes(text_png(["Backup the database every night"]))
    engine = CountingEngine()
    key = OcrCache.key(Image.open(png), engine, "eng")
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = OcrResult("planted text from outside", (), "tesseract x")
    (outside / f"{key}.json").write_text(json.dumps(planted.to_json()))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / key[:2]).symlink_to(outside, target_is_directory=True)
    cache = OcrCache(tmp_path / "cache")
    assert cache.get(key) is None  # the outside JSON is not read
    [page] = list(load_image(png, ocr_engine=engine, ocr_cache=tmp_path / "cache", image_dir=tmp_path / "i"))
    assert "planted" not in page.text and "database" in _words(page.text) and engine.calls == 1
    assert [p.name for p in outside.iterdir()] == [f"{key}.json"]  # nothing written through the link
    assert json.loads((outside / f"{key}.json").read_text())["text"] == "planted text from outside"
    assert "refusing OCR cache entry" in caplog.text and "outside the folder" in caplog.text


# --------------------------------------------------------------------------- bad input


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (1-bit) and holds a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@needs_tesseract
def test_huge_image_is_refused_before_ocr(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20_000, 20_000))
    engine = CountingEngine()
    with pytest.raises(ImageTooLargeError, match="400,000,000 pixels"):
        list(load_image(path, ocr="always", ocr_engine=engine))
    with pytest.raises(ImageTooLargeError, match="400,000,000"):
        ocr_image(path, engine=engine)
    assert engine.calls == 0


@needs_tesseract
def test_one_pixel_page_is_kept_without_calling_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), "black").save(path)
    engine = CountingEngine()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [page] = list(load_image(path, ocr_engine=engine, image_dir=tmp_path / "i"))
    assert engine.calls == 0 and page.text == "" and (page.width, page.height) == (1, 1)
    assert any("no text layer" in str(w.message) for w in caught)


@needs_tesseract
def test_engine_crash_on_one_page_reports_it_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    # page 2 is narrower, so its OCR image (150 dpi) is 500 px wide: the engine crashes on it
    path.write_bytes(image_only_pdf(text_pdf([PAGES[0], PAGES[1], PAGES[0]]), dpi=120, sizes=[300, 240, 300]))
    engine = CountingEngine(crash_on_width=500)  # 240 pt at 150 dpi
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pages = list(load_pdf(path, ocr_engine=engine, image_dir=tmp_path / "i"))
    assert [p.page for p in pages] == [1, 2, 3]
    assert [p.text_source for p in pages] == ["ocr", "layer", "ocr"]
    assert "greenhouse" in _words(pages[2].text)
    failed = [str(w.message) for w in caught if "OCR failed" in str(w.message)]
    assert len(failed) == 1 and "page 2" in failed[0] and "simulated segfault" in failed[0]


def test_no_engine_installed_gives_one_warning_naming_the_install(tmp_path: Path, monkeypatch) -> None:
    # Nothing to install here can be absent for real, so hide both engines.
    monkeypatch.setattr("pagesight.documents.ocr.available_engines", lambda: [])
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_only_pdf(text_pdf(PAGES), dpi=72))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pages = list(load_pdf(path, image_dir=tmp_path / "i"))
    assert [p.text for p in pages] == ["", ""]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "2 page(s)" in messages[0] and "apt install tesseract-ocr" in messages[0]
    assert OCR_INSTALL_HINT in messages[0] and "brew install tesseract" in messages[0]


@pytest.mark.parametrize("kind", ["not executable", "exec format error"])
def test_a_broken_tesseract_binary_is_a_typed_error(tmp_path: Path, kind: str) -> None:
    binary = tmp_path / "tesseract"
    binary.write_bytes(b"\x7fELF\x02\x01\x01 not for this machine")
    binary.chmod(0o644 if kind == "not executable" else 0o755)
    engine = TesseractEngine(str(binary))
    for call in (lambda: engine.version, lambda: engine.check_lang("eng")):
        with pytest.raises(MissingDependencyError) as caught:
            call()
        message = str(caught.value)
        assert f"the Tesseract program {str(binary)!r} cannot be run" in message
        assert "reinstall it, or point $PAGESIGHT_TESSERACT at a working tesseract" in message
        assert ("Permission denied" if kind == "not executable" else "Exec format error") in message


@needs_tesseract
def test_tesseract_is_always_told_the_resolution(tmp_path: Path) -> None:
    # a wrapper around the real program that records its arguments
    log = tmp_path / "args.log"
    wrapper = tmp_path / "tesseract-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec tesseract "$@"\n')
    wrapper.chmod(0o755)
    engine = TesseractEngine(str(wrapper))
    png = tmp_path / "note.png"
    Image.open(io.BytesIO(text_png(["Backup the database every night"]))).save(png, dpi=(300, 300))
    assert "database" in _words(ocr_image(png, engine=engine).text)
    big = Image.new("L", (5000, 800), 255)  # shrunk to 4000 px wide before OCR: 300 dpi becomes 240
    big.paste(Image.open(io.BytesIO(text_png(["Backup the database every night"]))).convert("L"), (50, 50))
    big.save(tmp_path / "big.png", dpi=(300, 300))
    ocr_image(tmp_path / "big.png", engine=engine)
    Image.open(png).save(tmp_path / "none.png")  # no resolution in the file: the default
    ocr_image(tmp_path / "none.png", engine=engine)
    [page] = list(load_image(png, ocr_engine=engine, image_dir=tmp_path / "i"))  # via the stored PNG
    assert "database" in _words(page.text)
    runs = [line for line in log.read_text().splitlines() if line.startswith("stdin")]
    assert [line.split("--dpi ")[1].split()[0] for line in runs] == [
        "300",
        "240",
        str(DEFAULT_OCR_DPI),
        "300",
    ]


def test_ocr_always_without_an_engine_does_not_call_text_pages_textless(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pagesight.documents.ocr.available_engines", lambda: [])
    path = tmp_path / "text.pdf"
    path.write_bytes(text_pdf(PAGES))  # two pages with a text layer
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pages = list(load_pdf(path, ocr="always", image_dir=tmp_path / "i"))
    assert [p.text_source for p in pages] == ["layer", "layer"] and "Greenhouse" in pages[0].text
    [message] = [str(w.message) for w in caught]
    assert "no text layer" not in message
    assert (
        "2 page(s) were to be OCR'd (pages 1, 2) but no OCR engine is installed, so they are indexed with "
        "their text layer only; " + OCR_INSTALL_HINT in message
    )


def test_named_engine_that_is_missing_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr("pagesight.documents.ocr.RapidOcrEngine.installed", staticmethod(lambda: False))
    monkeypatch.setattr("pagesight.documents.ocr._ENGINE_CACHE", {})
    with pytest.raises(MissingDependencyError, match=r'pip install "pagesight\[ocr\]"'):
        pick_engine("rapidocr")


# --------------------------------------------------------------------------- RapidOCR


@pytest.mark.skipif(not _rapidocr_imports(), reason='RapidOCR does not import (pip install "pagesight[ocr]")')
def test_rapidocr_puts_back_the_spaces_between_english_words(tmp_path: Path) -> None:
    png = text_png(["Programs that read PID files should be flexible"], fontsize=28, width=900)
    result = ocr_image(png, engine="rapidocr")
    found = _words(result.text)
    assert {"programs", "that", "read", "files", "should", "flexible"} <= found, result.text
    back = OcrResult.from_json(json.loads(json.dumps(result.to_json())))  # as the cache stores it
    assert back.text == result.text and back.engine == result.engine and result.words
    assert [w.text for w in back.words] == [w.text for w in result.words]
    pairs = zip(back.words, result.words, strict=True)
    assert all(abs(a - b) <= 0.05 for w, v in pairs for a, b in zip(w.box, v.box, strict=True))


@needs_tesseract
def test_scanned_pdf_and_image_from_a_url_get_ocr_text(http_server, tmp_path: Path) -> None:
    from http_server import Route

    http_server.add(
        "/scan.pdf", Route(body=image_only_pdf(text_pdf(PAGES[1:])), content_type="application/pdf")
    )
    http_server.add(
        "/note.png", Route(body=text_png(["Backup the database every night"]), content_type="image/png")
    )
    [pdf_page] = list(load_source(http_server.url("/scan.pdf"), image_dir=tmp_path / "a"))
    assert pdf_page.text_source == "ocr" and "invoice" in _words(pdf_page.text)
    [png_page] = list(load_source(http_server.url("/note.png"), image_dir=tmp_path / "b"))
    assert png_page.text_source == "ocr" and "database" in _words(png_page.text)
    [plain] = list(load_source(http_server.url("/note.png"), ocr="never", image_dir=tmp_path / "c"))
    assert plain.text == ""

"""PageLoader (LangChain), PageReader (LlamaIndex): page by page against a PDF written here, a folder, a URL.

The URL is served by a real HTTP server on loopback (tests/http_server.py).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pymupdf
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from http_server import LoopbackHTTPServer, Route  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from llama_index.core.schema import Document as LlamaDocument  # noqa: E402
from llama_index.core.schema import ImageDocument, MetadataMode  # noqa: E402

from pagesight.documents import load_pdf, sha256_file  # noqa: E402
from pagesight.errors import (  # noqa: E402
    ConfigurationError,
    DocumentLoadError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from pagesight.integrations import PageLoader, PageReader  # noqa: E402
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*have no text layer")

KEYS = {"source", "page", "image", "width", "height", "content_hash", "text_source", "id"}


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    return write_pdf(tmp_path / "docs" / "network.pdf", NETWORK)


def _pdf_texts(path: Path) -> list[str]:
    with pymupdf.open(path) as doc:
        return [page.get_text() for page in doc]


def test_loader_documents_match_the_pdf_page_by_page(pdf: Path, tmp_path: Path) -> None:
    loader = PageLoader(pdf, image_dir=tmp_path / "pages", ocr="never")
    lazy = loader.lazy_load()
    first = next(lazy)  # lazy: one page at a time
    docs = [first, *lazy]
    expected = list(load_pdf(pdf, image_dir=tmp_path / "direct", ocr="never"))  # what ingest loads
    raw = _pdf_texts(pdf)
    assert len(docs) == len(expected) == len(raw) == 3
    digest = sha256_file(pdf)
    for number, (doc, page) in enumerate(zip(docs, expected, strict=True), start=1):
        assert isinstance(doc, Document) and set(doc.metadata) >= KEYS
        meta = doc.metadata
        assert meta["source"] == str(pdf) and meta["page"] == number and meta["content_hash"] == digest
        assert doc.page_content == page.text and doc.id == page.id == meta["id"]
        assert " ".join(doc.page_content.split()) == " ".join(raw[number - 1].split())
        image = Path(meta["image"])
        assert image.is_file() and image.parent == tmp_path / "pages"
        with Image.open(image) as png:
            assert png.size == (meta["width"], meta["height"]) == (page.width, page.height)
        assert abs(meta["width"] - 400 * 96 / 72) < 1 and abs(meta["height"] - 500 * 96 / 72) < 1  # 96 dpi
    assert [d.metadata["text_source"] for d in docs] == ["layer", "layer", "layer"]
    assert docs[2].page_content == ""  # the drawing page has no text layer


def test_page_labels_when_the_pdf_defines_them(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "labelled.pdf", GARDEN)
    with pymupdf.open(path) as doc:
        doc.set_page_labels([{"startpage": 0, "prefix": "", "style": "r", "firstpagenum": 1}])
        doc.saveIncr()
    docs = PageLoader(path, render=False, ocr="never").load()
    assert [d.metadata.get("page_label") for d in docs] == ["i", "ii"]
    assert [d.metadata["page"] for d in docs] == [1, 2] and all(d.metadata["image"] is None for d in docs)
    plain = PageLoader(write_pdf(tmp_path / "plain.pdf", GARDEN), render=False, ocr="never").load()
    assert all("page_label" not in d.metadata for d in plain)


def test_a_folder_loads_its_documents_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    write_pdf(folder / "b-garden.pdf", GARDEN)
    write_pdf(folder / "sub" / "a-network.pdf", NETWORK[:2])
    (folder / "notes.txt").write_text("not a document")
    Image.new("RGB", (30, 20), (200, 10, 10)).save(folder / "c-red.png")
    docs = PageLoader(folder, ocr="never").load()
    assert [(Path(d.metadata["source"]).name, d.metadata["page"]) for d in docs] == [
        ("b-garden.pdf", 1),
        ("b-garden.pdf", 2),
        ("c-red.png", 1),
        ("a-network.pdf", 1),
        ("a-network.pdf", 2),
    ]
    red = docs[2]
    assert (red.metadata["width"], red.metadata["height"]) == (30, 20) and red.page_content == ""
    assert len(PageLoader(folder, recursive=False, ocr="never").load()) == 3


@pytest.mark.enable_socket
def test_a_url_served_on_loopback(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "served.pdf", GARDEN)
    route = Route(body=path.read_bytes(), content_type="application/pdf")
    with LoopbackHTTPServer({"/docs/served.pdf": route}) as server:
        url = server.url("/docs/served.pdf")
        docs = PageLoader(url, ocr="never").load()
        nodes = PageReader(ocr="never").load_data(url)
    assert [d.metadata["source"] for d in docs] == [url, url] and [d.metadata["page"] for d in docs] == [1, 2]
    assert [d.page_content for d in docs] == [p.text for p in load_pdf(path, render=False, ocr="never")]
    assert docs[0].metadata["content_hash"] == sha256_file(path)
    assert [n.text for n in nodes] == [d.page_content for d in docs]
    assert all(isinstance(n, ImageDocument) and Path(n.image_path).is_file() for n in nodes)


def test_reader_gives_image_documents_for_rendered_pages_and_documents_otherwise(pdf: Path) -> None:
    reader = PageReader(ocr="never")
    docs = reader.load_data(pdf, extra_info={"collection": "manuals"})
    loaded = PageLoader(pdf, ocr="never").load()
    assert len(docs) == 3 and all(isinstance(d, ImageDocument) for d in docs)
    for doc, lc in zip(docs, loaded, strict=True):
        assert doc.text == lc.page_content and doc.doc_id == lc.id
        assert doc.metadata["collection"] == "manuals" and set(doc.metadata) >= KEYS
        with Image.open(doc.image_path) as png:
            assert png.size == (doc.metadata["width"], doc.metadata["height"])
        if doc.text:  # (the drawing page has no text, so no content at all)
            shown = doc.get_content(metadata_mode=MetadataMode.LLM)
            assert str(pdf) in shown and doc.image_path not in shown  # paths and hashes hidden from the LLM
            assert doc.metadata["content_hash"] not in shown
    text_only = PageReader(render=False, ocr="never").load_data([pdf])
    assert all(type(d) is LlamaDocument for d in text_only) and text_only[0].metadata["image"] is None


def test_errors_are_typed_and_safety_limits_apply(pdf: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="missing.pdf"):
        PageLoader(tmp_path / "missing.pdf").load()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UnsupportedSourceError, match="notes.txt"):
        PageReader().load_data(tmp_path / "notes.txt")
    with pytest.raises(DocumentLoadError, match="network.pdf.*3 pages.*max_pages"):
        PageLoader(pdf, max_pages=2, ocr="never").load()  # ingest's page limit, checked before rendering
    with pytest.raises(ConfigurationError, match="at least one source"):
        PageLoader([])
    garden = write_pdf(tmp_path / "garden.pdf", GARDEN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        docs = PageLoader([tmp_path / "missing.pdf", garden], skip_errors=True, ocr="never").load()
    assert [d.metadata["source"] for d in docs] == [str(garden)] * 2
    assert any("missing.pdf" in str(w.message) and "skipped" in str(w.message) for w in caught)

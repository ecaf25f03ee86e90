"""OCR through ingest: scanned PDFs are found with real weights; the cache, failures and missing engines."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pagesight.cli import main
from pagesight.documents.ocr import OCR_INSTALL_HINT
from pagesight.pipelines._retrieve import hit_metadata
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.heatmap import align_words, ocr_page_words
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "documents"))
from ocr_factories import CountingEngine, image_only_pdf, needs_tesseract, text_pdf  # noqa: E402

TOPICS = [
    "Greenhouse tomatoes need pruning every week. Remove the side shoots so the plant grows tall and "
    "gives more fruit.",
    "The invoice total is payable within thirty days. Late payment adds interest of two percent per month.",
    "Configure the firewall to allow SSH on port 22 and drop all other incoming network traffic.",
]


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "mixed.pdf").write_bytes(image_only_pdf(text_pdf(TOPICS), dpi=120))
    return folder


@needs_tesseract
def test_scanned_pdf_is_found_by_its_words_with_real_weights(tmp_path, scans, encoder) -> None:
    store = PageStore(tmp_path / "store")
    report = ingest([scans], store, encoder, show_progress=False)
    assert report.ok and report.pages_indexed == 3, report.summary()
    pages = store.pages()
    assert [p.text_source for p in pages] == ["ocr", "ocr", "ocr"]
    for mode in ("dense", "bm25", "hybrid"):
        searcher = PageSearcher(store, encoder, mode=mode)  # type: ignore[arg-type]
        assert searcher.search("when is the bill due and what if I pay late", k=3)[0].page == 2, mode
        assert searcher.search("open the ssh port in the packet filter", k=3)[0].page == 3, mode
    top = PageSearcher(store, encoder, mode="dense").search("cutting side shoots off tomato plants", k=1)[0]
    assert top.page == 1 and top.text_source == "ocr"
    assert hit_metadata(top)["text_source"] == "ocr"  # what LangChain / LlamaIndex documents carry
    # the OCR word boxes travel with the page image into the store
    assert top.image is not None and top.image.with_name(top.image.stem + ".words.json").is_file()
    # ... where the heatmap finds them: most OCR words are placed on the stored text
    words = ocr_page_words(top)
    assert len(words) > 10 and len(align_words(top.text, words)) >= 0.9 * len(words)


@needs_tesseract
def test_reindexing_with_force_does_not_ocr_again(tmp_path, scans, encoder) -> None:
    store = PageStore(tmp_path / "store")
    engine = CountingEngine()
    ingest([scans], store, encoder, show_progress=False, ocr_engine=engine)
    assert engine.calls == 3
    assert len(list((tmp_path / "store" / "ocr-cache").rglob("*.json"))) == 3
    again = ingest([scans], store, encoder, show_progress=False, ocr_engine=engine, force=True)
    assert [(r.status, r.pages) for r in again.results] == [("indexed", 3)]
    assert engine.calls == 3  # second run: zero engine calls
    assert [p.text_source for p in store.pages()] == ["ocr", "ocr", "ocr"]


@needs_tesseract
def test_engine_crash_on_one_page_is_reported_and_the_rest_indexed(tmp_path, encoder) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(image_only_pdf(text_pdf(TOPICS), dpi=100, sizes=[300, 240, 300]))
    engine = CountingEngine(crash_on_width=500)  # page 2: 240 pt at 150 dpi
    store = PageStore(tmp_path / "store")
    [result] = ingest([pdf], store, encoder, show_progress=False, ocr_engine=engine).results
    assert (result.status, result.pages) == ("indexed", 3)
    assert any("page 2: OCR failed" in w for w in result.warnings)
    assert [p.text_source for p in store.pages()] == ["ocr", "layer", "ocr"]


def test_no_engine_warns_once_for_all_sources(tmp_path, encoder, monkeypatch) -> None:
    monkeypatch.setattr("pagesight.documents.ocr.available_engines", lambda: [])
    for name in ("a.pdf", "b.pdf"):
        (tmp_path / name).write_bytes(image_only_pdf(text_pdf(TOPICS[:1]), dpi=60))
    store = PageStore(tmp_path / "store")
    report = ingest([tmp_path / "a.pdf", tmp_path / "b.pdf"], store, encoder, show_progress=False)
    assert report.ok and report.pages_indexed == 2  # indexed as images, findable by name
    said = [w for r in report.results for w in r.warnings if OCR_INSTALL_HINT in w]
    assert len(said) == 1 and "apt install tesseract-ocr" in said[0]


@needs_tesseract
def test_cli_names_the_ocr_engine_and_takes_the_flags(tmp_path, scans, capsys) -> None:
    store = tmp_path / "store"
    code = main(["index", str(scans), "--store", str(store), "-q", "--ocr-lang", "eng"])
    err = capsys.readouterr().err
    assert code == 0, err
    first = err.splitlines()[0]
    assert "OCR: tesseract 5" in first or "OCR: tesseract 4" in first
    code = main(["index", str(scans), "--store", str(tmp_path / "s2"), "-q", "--ocr", "never"])
    err = capsys.readouterr().err
    assert code == 0 and "OCR: off" in err.splitlines()[0]
    code = main(["index", str(scans), "--store", str(tmp_path / "s3"), "-q", "--ocr-lang", "klingon"])
    assert code != 0 and "ocr_lang" in capsys.readouterr().err


@needs_tesseract
def test_heatmap_points_at_ocr_word_boxes(tmp_path, scans) -> None:
    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.retrieval.heatmap import page_regions
    from pagesight.retrieval.multivector import MultiVectorStore

    tokens = ColEmbedEncoder(device="cpu").load()  # minilm-tokens: text-token late interaction
    store = MultiVectorStore(tmp_path / "store")
    report = ingest([scans], store, tokens, show_progress=False)
    assert report.ok, report.summary()
    [hit] = store.search(tokens.encode_queries(["invoice"])[0], k=1, embedder=tokens.info)
    assert hit.page == 2 and hit.text_source == "ocr"
    regions = page_regions(tokens, "invoice", hit)  # the scan's source has no text layer to read
    assert regions is not None and regions.kind == "text"
    hottest = regions.hottest()
    [invoice] = [w for w in ocr_page_words(hit) if w.text.lower() == "invoice"]
    assert hottest == invoice.box
    store.close()

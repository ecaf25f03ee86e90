"""MaxSim heatmaps: token scores, rendering, token locations (text spans, image grids), whole pages.

Real components throughout: the bundled MiniLM read as token vectors (``minilm-tokens``), PDFs
written here with PyMuPDF and read back by both PDF readers, a real store, and the NVIDIA-style
stand-in loaded through ``AutoModel.from_pretrained(..., trust_remote_code=True)``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pagesight.models import ColEmbedEncoder
from pagesight.models._colembed_layout import (
    TokenGrid,
    closest_tile_ratio,
    merged_patch_grid,
    tiled_grids,
    token_boxes,
)
from pagesight.retrieval.heatmap import (
    Word,
    align_words,
    page_heatmap,
    page_regions,
    pdf_words,
    render_heatmap,
    token_scores,
)
from pagesight.retrieval.store import Hit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_colembed"))

from colembed_builders import build_standin, build_tiny_multivector  # noqa: E402
from tiny_models import minilm_path  # noqa: E402

DPI = 96
SCALE = DPI / 72


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def hit_for(image: Path | None, *, text: str = "", source: str = "doc.pdf", page: int = 1) -> Hit:
    size = Image.open(image).size if image is not None else (0, 0)
    return Hit("id", source, page, text, image, size[0], size[1], "ab" * 32, 0.0)


# -- token scores ----------------------------------------------------------------------------------


def test_token_scores_known_answer() -> None:
    q = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]], dtype=np.float32)
    d = np.array([[1, 0, 0], [0, 1, 0], [0.8, 0.6, 0], [0, 0.6, 0.8]], dtype=np.float32)
    # q0 -> d0 (1.0); q1 -> d2 (0.96); q2 -> d3 (0.8); d1 is nobody's best
    assert np.allclose(token_scores(q, d), [1.0, 0.0, 0.96, 0.8])
    # max over query tokens, picked or not
    assert np.allclose(token_scores(q, d, reduce="max"), [1.0, 0.8, 0.96, 0.8])


def test_token_scores_add_up_to_maxsim_on_random_inputs() -> None:
    rng = np.random.default_rng()
    for _ in range(20):
        dim = int(rng.integers(2, 40))
        q = rng.standard_normal((int(rng.integers(1, 20)), dim))
        d = rng.standard_normal((int(rng.integers(1, 60)), dim))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        scores = token_scores(q.astype(np.float32), d.astype(np.float32))
        reference = (q @ d.T).max(axis=1).sum()
        assert scores.shape == (d.shape[0],)
        assert scores.sum() == pytest.approx(reference, abs=1e-4)
        picked = set((q @ d.T).argmax(axis=1).tolist())
        assert all(scores[i] == 0 for i in range(d.shape[0]) if i not in picked)


def test_token_scores_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="dim"):
        token_scores(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="reduce"):
        token_scores(np.ones((2, 3)), np.ones((2, 3)), reduce="mean")  # type: ignore[arg-type]


# -- rendering -------------------------------------------------------------------------------------


def test_render_leaves_zero_weight_untouched_and_colour_is_monotone() -> None:
    page = Image.new("RGB", (500, 100), "white")
    ImageDraw.Draw(page).text((5, 5), "ink", fill="black")
    boxes = [(i * 100, 0, (i + 1) * 100, 100) for i in range(5)]
    out = render_heatmap(page, boxes, [0.0, 0.5, 1.0, 2.0, 4.0], alpha=0.5)
    assert out.size == page.size and out.mode == "RGB"
    before, after = np.asarray(page), np.asarray(out)
    assert np.array_equal(before[:, :100], after[:, :100])  # weight 0, ink included
    centres = [after[50, 100 * i + 50].astype(int) for i in range(1, 5)]
    for weaker, stronger in zip(centres, centres[1:], strict=False):
        assert stronger[1] < weaker[1] and stronger[2] < weaker[2]  # less green, less blue: redder
        assert stronger[0] <= weaker[0]
    assert tuple(centres[-1]) != (255, 255, 255)


def test_render_overlapping_boxes_take_the_larger_weight_and_boxes_are_clipped() -> None:
    page = Image.new("L", (60, 60), 255)
    out = render_heatmap(page, [(0, 0, 60, 60), (-10, -10, 20, 20)], [0.2, 1.0])
    a = np.asarray(out).astype(int)
    assert out.mode == "RGB" and out.size == (60, 60)
    assert a[5, 5, 1] < a[40, 40, 1]  # the overlap shows the stronger tint
    only_weak = render_heatmap(page, [(0, 0, 60, 60)], [1.0])
    assert np.array_equal(np.asarray(only_weak)[40, 40], a[5, 5])  # both normalised to the max


def test_render_checks_its_inputs() -> None:
    page = Image.new("RGB", (10, 10), "white")
    with pytest.raises(ValueError, match="weights"):
        render_heatmap(page, [(0, 0, 5, 5)], [-1.0])
    with pytest.raises(ValueError, match="1 boxes but 2"):
        render_heatmap(page, [(0, 0, 5, 5)], [1.0, 2.0])
    with pytest.raises(ValueError, match="alpha"):
        render_heatmap(page, [(0, 0, 5, 5)], [1.0], alpha=0)
    assert np.array_equal(np.asarray(render_heatmap(page, [(0, 0, 5, 5)], [0.0])), np.asarray(page))


# -- layouts ---------------------------------------------------------------------------------------


def test_token_grid_cells() -> None:
    grid = TokenGrid(start=3, rows=2, cols=4, box=(10, 20, 90, 60))
    assert grid.count == 8 and grid.stop == 11
    assert grid.cell_box(3) == (10, 20, 30, 40)
    assert grid.cell_box(8) == (30, 40, 50, 60)  # row 1, column 1
    with pytest.raises(IndexError):
        grid.cell_box(11)
    rows, boxes = token_boxes([grid, TokenGrid(20, 1, 1, (0, 0, 5, 5))])
    assert rows == [3, 4, 5, 6, 7, 8, 9, 10, 20] and boxes[-1] == (0, 0, 5, 5)


def test_tiling_rule_known_answers() -> None:
    # A US-Letter scan at 150 dpi, NVIDIA's defaults (512 px tiles, at most 6, thumbnail):
    # (2 cols, 3 rows) scores 0.6 * 0.863 = 0.518, above (2, 2) 0.385 and (3, 2) 0.309.
    assert closest_tile_ratio(1275, 1650, image_size=512, max_tiles=6) == (2, 3)
    grids = tiled_grids(
        1275, 1650, first_token=5, image_size=512, max_tiles=6, use_thumbnail=True, tokens_per_tile=256
    )
    assert len(grids) == 7 and all(g.rows == g.cols == 16 for g in grids)
    assert [g.start for g in grids] == [5 + 256 * i for i in range(7)]
    assert grids[0].box == (0, 0, 637.5, 550) and grids[1].box == (637.5, 0, 1275, 550)
    assert grids[5].box == (637.5, 1100, 1275, 1650)
    assert grids[6].box == (0, 0, 1275, 1650)  # the thumbnail, last
    # a square image: one tile, so no thumbnail; ties keep the smaller tiling
    assert (
        len(
            tiled_grids(
                600, 600, first_token=0, image_size=512, max_tiles=6, use_thumbnail=True, tokens_per_tile=256
            )
        )
        == 1
    )
    assert closest_tile_ratio(64, 128, image_size=32, max_tiles=4) == (1, 2)
    fixed = tiled_grids(
        100,
        50,
        first_token=2,
        image_size=32,
        max_tiles=4,
        use_thumbnail=True,
        tokens_per_tile=16,
        dynamic=False,
    )
    assert fixed == [TokenGrid(2, 4, 4, (0, 0, 100, 50))]
    with pytest.raises(ValueError, match="square"):
        tiled_grids(10, 10, first_token=0, image_size=8, max_tiles=1, use_thumbnail=False, tokens_per_tile=10)


def test_merged_patch_grid() -> None:
    assert merged_patch_grid(640, 480, first_token=4, grid_h=30, grid_w=40, merge=2) == [
        TokenGrid(4, 15, 20, (0, 0, 640, 480))
    ]
    with pytest.raises(ValueError, match="merge"):
        merged_patch_grid(640, 480, first_token=0, grid_h=31, grid_w=40, merge=2)


# -- text-token models -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_tokens() -> ColEmbedEncoder:
    return ColEmbedEncoder(device="cpu").load()


def test_document_token_spans_match_the_rows_exactly(minilm_tokens: ColEmbedEncoder) -> None:
    long = " ".join(f"Invoice {i} totals {i * 7} EUR, naïve café ﬁne." for i in range(60))  # > 1 window
    texts = [long, "photosynthesis", ""]
    spans = minilm_tokens.document_token_spans(texts)
    rows = minilm_tokens.encode_documents(texts)
    assert spans is not None
    assert [s.shape[0] for s in spans] == [r.shape[0] for r in rows]
    assert rows[0].shape[0] > 256  # windowed, yet one span per row
    tok = minilm_tokens._backend._st.model.tokenizer  # type: ignore[attr-defined]
    ids = tok(long, add_special_tokens=False)["input_ids"]
    for (start, end), token in zip(spans[0], tok.convert_ids_to_tokens(ids), strict=True):
        piece = long[start:end].lower()
        assert token.removeprefix("##") in (piece, tok.backend_tokenizer.normalizer.normalize_str(piece))
    assert "".join(texts[1][s:e] for s, e in spans[1]) == "photosynthesis"
    assert (spans[2] == -1).all()


@pytest.fixture(scope="module")
def tiny_colbert(tmp_path_factory: pytest.TempPathFactory) -> ColEmbedEncoder:
    folder = build_tiny_multivector(tmp_path_factory.mktemp("colbert") / "colbert", minilm_path())
    return ColEmbedEncoder(str(folder), backend="sentence-transformers", device="cpu").load()


def test_colbert_token_spans_match_the_rows_with_prompt_and_specials_unplaced(
    tiny_colbert: ColEmbedEncoder,
) -> None:
    long = " ".join(f"Line {i}: the greenhouse needs photosynthesis lamps." for i in range(12))  # > 64 tokens
    texts = ["Hello, world! photosynthesis.", long]
    spans = tiny_colbert.document_token_spans(texts)
    rows = tiny_colbert.encode_documents(texts)
    assert spans is not None
    assert [s.shape[0] for s in spans] == [r.shape[0] for r in rows]
    # [CLS], the "[unused1] " prompt (4 word pieces), then the text's tokens, then [SEP]
    first = spans[0]
    assert (first[:5] == -1).all() and (first[-1] == -1).all()
    assert [texts[0][s:e] for s, e in first[5:-1]] == [
        "Hello",
        ",",
        "world",
        "!",
        "photos",
        "yn",
        "thesis",
        ".",
    ]
    placed = spans[1][spans[1][:, 0] >= 0]
    assert rows[1].shape[0] > 64 and placed[:, 1].max() == len(long)  # windows cover the whole text
    assert all(long[s:e].strip() == long[s:e] and e > s for s, e in placed)


def test_no_spans_and_no_layout_where_the_model_does_not_say(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tiny_colbert: ColEmbedEncoder
) -> None:
    nvidia = ColEmbedEncoder(
        str(build_standin(tmp_path / "m")), backend="nvidia", trust_remote_code=True, device="cpu"
    )
    with caplog.at_level(logging.INFO, logger="pagesight"):
        assert nvidia.document_token_spans(["some text"]) is None
        assert tiny_colbert.image_token_layout(Image.new("RGB", (8, 8))) is None
    assert "does not map its tokens to characters" in caplog.text


def test_align_words_skips_what_is_not_in_the_text() -> None:
    text = "The ﬁrst line\n\nsecond line, the end"
    words = [
        Word(w, (i, 0, i + 1, 1))
        for i, w in enumerate(["The", "ﬁrst", "line", "GHOST", "second", "line,", "the", "end"])
    ]
    placed = align_words(text, words)
    assert [(text[s:e], w.text) for s, e, w in placed] == [
        ("The", "The"),
        ("ﬁrst", "ﬁrst"),
        ("line", "line"),
        ("second", "second"),
        ("line,", "line,"),
        ("the", "the"),
        ("end", "end"),
    ]


def write_pdf(path: Path, rotation: int = 0) -> dict[str, tuple[float, float, float, float]]:
    """A one-page PDF with words at known places; returns each marked word's box in 96-dpi pixels."""
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=500)
    lines = [
        ((40, 60), "Quarterly report of the garden club", 12),
        ((40, 120), "Members planted tomatoes and beans this spring.", 11),
        ((220, 300), "photosynthesis", 14),
        ((40, 450), "adjourned", 11),
    ]
    boxes = {}
    for (x, y), text, size in lines:
        page.insert_text((x, y), text, fontsize=size)
        if " " not in text:  # its box: advance width by baseline, ascent above, descent below
            width = pymupdf.get_text_length(text, fontsize=size)
            boxes[text] = (x * SCALE, (y - size) * SCALE, (x + width) * SCALE, (y + 0.3 * size) * SCALE)
    page.set_rotation(rotation)
    doc.save(str(path))
    doc.close()
    return boxes


@pytest.fixture(scope="module")
def text_store(tmp_path_factory: pytest.TempPathFactory, minilm_tokens: ColEmbedEncoder):  # type: ignore[no-untyped-def]
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.multivector import MultiVectorStore

    folder = tmp_path_factory.mktemp("heat")
    pdf = folder / "garden.pdf"
    boxes = write_pdf(pdf)
    store = MultiVectorStore(folder / "store")
    report = ingest([pdf], store, minilm_tokens, dpi=DPI)
    assert report.results[0].status == "indexed"
    yield store, pdf, boxes
    store.close()


def test_text_heatmap_puts_the_heat_on_the_queried_word(text_store, minilm_tokens: ColEmbedEncoder) -> None:  # type: ignore[no-untyped-def]
    store, pdf, boxes = text_store
    hit = store.search(minilm_tokens.encode_queries(["photosynthesis"])[0], k=1, embedder=minilm_tokens.info)[
        0
    ]
    assert Path(hit.source) == pdf
    regions = page_regions(minilm_tokens, "photosynthesis", hit)
    assert regions is not None and regions.kind == "text" and regions.size == (hit.width, hit.height)
    hottest = regions.hottest()
    assert hottest is not None and overlaps(hottest, boxes["photosynthesis"])
    far = [w for b, w in zip(regions.boxes, regions.weights, strict=True) if overlaps(b, boxes["adjourned"])]
    assert far == [0.0]
    # the summed weights are the page's MaxSim score: every query token picked a located token
    q = minilm_tokens.encode_queries(["photosynthesis"])[0]
    d = minilm_tokens.encode_documents([hit.text])[0]
    assert regions.weights.sum() == pytest.approx(float((q @ d.T).max(axis=1).sum()), rel=1e-5)

    image = page_heatmap(minilm_tokens, "photosynthesis", hit)
    assert image is not None and image.size == Image.open(hit.image).size
    page, heat = np.asarray(Image.open(hit.image).convert("RGB")), np.asarray(image)
    x0, y0, x1, y1 = (int(v) for v in boxes["adjourned"])
    assert np.array_equal(page[y0:y1, x0:x1], heat[y0:y1, x0:x1])
    x0, y0, x1, y1 = (int(v) for v in hottest)
    assert not np.array_equal(page[y0:y1, x0:x1], heat[y0:y1, x0:x1])


def test_text_heatmap_needs_a_local_pdf(text_store, minilm_tokens: ColEmbedEncoder, caplog) -> None:  # type: ignore[no-untyped-def]
    store, pdf, _ = text_store
    hit = store.pages()[0]
    moved = Hit(
        hit.id,
        "https://example.org/garden.pdf",
        hit.page,
        hit.text,
        hit.image,
        hit.width,
        hit.height,
        hit.content_hash,
        hit.score,
    )
    with caplog.at_level(logging.INFO, logger="pagesight"):
        assert page_heatmap(minilm_tokens, "photosynthesis", moved) is None
        assert "not a local file" in caplog.text
        assert page_heatmap(minilm_tokens, "photosynthesis", moved, source_path=pdf) is not None
        no_image = Hit(hit.id, hit.source, hit.page, hit.text, None, 0, 0, hit.content_hash, 0.0)
        assert page_heatmap(minilm_tokens, "photosynthesis", no_image) is None
        assert "no page image" in caplog.text


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_both_pdf_readers_place_words_on_their_ink(tmp_path: Path, rotation: int) -> None:
    import pymupdf

    from pagesight.documents.pdf import load_pdf

    pdf = tmp_path / "rotated.pdf"
    write_pdf(pdf, rotation)
    page = next(load_pdf(pdf, dpi=DPI, image_dir=tmp_path))
    assert page.image is not None
    ink = np.asarray(Image.open(page.image).convert("L")) < 128
    from pagesight.retrieval import heatmap

    mupdf = heatmap._mupdf_words(pdf, 1, (page.width, page.height))
    pdfium = heatmap._pdfium_words(pdf, 1, (page.width, page.height))
    assert mupdf is not None and pdfium is not None
    assert pdf_words(pdf, 1, (page.width, page.height)) == mupdf  # PyMuPDF first, as the loader
    assert pymupdf.open(str(pdf))[0].rotation == rotation
    for words in (mupdf, pdfium):
        by_text = {w.text: w.box for w in words}
        assert {"photosynthesis", "adjourned", "Quarterly"} <= set(by_text)
        for word in ("photosynthesis", "adjourned"):
            x0, y0, x1, y1 = (int(round(v)) for v in by_text[word])
            inside = ink[max(y0, 0) : y1, max(x0, 0) : x1].sum()
            assert inside > 0.9 * ink_near(ink, (x0, y0, x1, y1)), (word, rotation)
    a = next(w.box for w in mupdf if w.text == "photosynthesis")
    b = next(w.box for w in pdfium if w.text == "photosynthesis")
    assert iou(a, b) > 0.6  # MuPDF boxes span the font's line height, PDFium's the glyphs


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def ink_near(ink: np.ndarray, box: tuple[int, int, int, int], pad: int = 6) -> int:
    x0, y0, x1, y1 = box
    return int(ink[max(y0 - pad, 0) : y1 + pad, max(x0 - pad, 0) : x1 + pad].sum())


# -- image-token models (the NVIDIA-style stand-in) ------------------------------------------------


@pytest.fixture(scope="module")
def tiled_standin(tmp_path_factory: pytest.TempPathFactory) -> ColEmbedEncoder:
    folder = build_standin(tmp_path_factory.mktemp("tiled") / "standin", max_input_tiles=4)
    return ColEmbedEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu").load()


def test_standin_default_layout_is_one_grid_then_the_marker(tmp_path: Path) -> None:
    enc = ColEmbedEncoder(
        str(build_standin(tmp_path / "m")), backend="nvidia", trust_remote_code=True, device="cpu"
    )
    image = Image.new("RGB", (60, 80), "white")
    layout = enc.image_token_layout(image)
    assert layout is not None
    assert layout.grids == (TokenGrid(0, 4, 4, (0, 0, 60, 80)),) and layout.tokens == 17
    assert enc.encode_images([image])[0].shape[0] == 17


def test_standin_tiled_layout_matches_the_rows_it_returns(tiled_standin: ColEmbedEncoder) -> None:
    image = Image.new("RGB", (64, 128), "white")
    layout = tiled_standin.image_token_layout(image)
    assert layout is not None
    assert [g.box for g in layout.grids] == [(0, 0, 64, 64), (0, 64, 64, 128), (0, 0, 64, 128)]
    assert [g.start for g in layout.grids] == [0, 16, 32] and layout.tokens == 49
    assert tiled_standin.encode_images([image])[0].shape == (49, 32)


def test_changing_one_patch_changes_the_rows_the_layout_puts_there(tiled_standin: ColEmbedEncoder) -> None:
    """End to end on the stand-in: token index -> box agrees with what the model actually did."""
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8))
    changed = base.copy()
    square = (40, 80, 56, 96)  # in the bottom tile (its row 1, columns 2-3) and in the thumbnail
    changed.paste((0, 0, 0), square)
    layout = tiled_standin.image_token_layout(base)
    assert layout is not None
    a, b = tiled_standin.encode_images([base, changed])
    moved = np.linalg.norm(a - b, axis=1)
    centre = ((square[0] + square[2]) / 2, (square[1] + square[3]) / 2)
    for grid in layout.grids:
        if not (grid.box[0] <= centre[0] < grid.box[2] and grid.box[1] <= centre[1] < grid.box[3]):
            continue
        top = grid.start + int(moved[grid.start : grid.stop].argmax())
        assert overlaps(grid.cell_box(top), square), (grid, grid.cell_box(top))
    untouched = layout.grids[0]  # the top tile: the square is not in it
    assert moved[untouched.start : untouched.stop].max() < moved[16:32].max()


def test_image_heatmap_weights_are_the_patch_tokens_maxsim_shares(
    tiled_standin: ColEmbedEncoder, tmp_path: Path
) -> None:
    path = tmp_path / "page.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(path)
    hit = hit_for(path, text="")
    question = "where is the invoice total?"
    regions = page_regions(tiled_standin, question, hit)
    assert regions is not None and regions.kind == "image" and len(regions.boxes) == 48
    q = tiled_standin.encode_queries([question])[0]
    d = tiled_standin.encode_images([Image.open(path)])[0]
    assert np.allclose(regions.weights, token_scores(q, d)[:48])
    image = page_heatmap(tiled_standin, question, hit, alpha=0.6)
    assert image is not None and image.size == (64, 128)
    # a query token matching patch k exactly makes patch k's cell the hottest region
    layout = tiled_standin.image_token_layout(Image.open(path))
    assert layout is not None
    rows, boxes = token_boxes(list(layout.grids))
    for k in (5, 21, 40):
        scores = token_scores(d[k : k + 1], d)[rows]
        assert boxes[int(scores.argmax())] == layout.grids[k // 16].cell_box(k)


def test_text_only_encoder_has_no_image_layout(minilm_tokens: ColEmbedEncoder) -> None:
    assert minilm_tokens.image_token_layout(Image.new("RGB", (8, 8))) is None


def test_colbert_text_heatmap_on_the_same_page(text_store, tiny_colbert: ColEmbedEncoder) -> None:  # type: ignore[no-untyped-def]
    store, pdf, boxes = text_store
    hit = store.pages()[0]
    regions = page_regions(tiny_colbert, "photosynthesis lamps", hit)
    assert regions is not None and regions.kind == "text"
    words = pdf_words(pdf, 1, regions.size) or []
    assert len(words) == 15 and regions.boxes == [w.box for w in words]  # every word found in the text
    q = tiny_colbert.encode_queries(["photosynthesis lamps"])[0]
    d = tiny_colbert.encode_documents([hit.text])[0]
    total = float((q @ d.T).max(axis=1).sum())
    assert (regions.weights >= 0).all() and 0 < regions.weights.sum() <= total + 1e-5

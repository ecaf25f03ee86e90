"""The shared prompt, bounded page images, tolerant citation matching and the generator picker."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pagesight.errors import ConfigurationError, DocumentLoadError
from pagesight.models.generate import make_generator
from pagesight.pipelines._images import bounded_image, png_bytes
from pagesight.pipelines.answer import ExtractiveGenerator, parse_citations, resolve_citations
from pagesight.pipelines.prompt import SYSTEM_PROMPT, build_prompt, page_block
from pagesight.retrieval.store import Hit


def _hit(source: str, page: int, text: str, image: Path | None = None, score: float = 1.0) -> Hit:
    return Hit(
        id=f"{source}#{page}",
        source=source,
        page=page,
        text=text,
        image=image,
        width=0,
        height=0,
        content_hash="h",
        score=score,
    )


def _png(path: Path, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def test_prompt_labels_every_page_and_ends_with_the_question(tmp_path):
    hits = [_hit("/docs/a.pdf", 3, "Alpha text."), _hit("https://x.org/b.pdf", 1, "Beta\n\ntext.")]
    prompt = build_prompt("What is beta?", hits)
    assert prompt.system == SYSTEM_PROMPT
    first = prompt.user.index("Page [a.pdf p.3]:\nAlpha text.")
    assert first < prompt.user.index("Page [b.pdf p.1]:\nBeta text.")
    assert prompt.user.endswith("Question: What is beta?")
    assert prompt.images == [] and prompt.pages == hits
    assert prompt.plain().startswith(SYSTEM_PROMPT) and prompt.plain().endswith("Answer:")


def test_prompt_attaches_at_most_max_images_and_names_them_in_order(tmp_path):
    img1 = _png(tmp_path / "1.png", (10, 10))
    img3 = _png(tmp_path / "3.png", (10, 10))
    hits = [
        _hit("a.pdf", 1, "one", img1),
        _hit("a.pdf", 2, "two", None),  # no image: text only
        _hit("a.pdf", 3, "three", img3),
        _hit("a.pdf", 4, "four", tmp_path / "missing.png"),  # file gone: skipped
    ]
    prompt = build_prompt("q", hits, images=True, max_images=5)
    assert prompt.images == [img1, img3]
    assert "image 1 is [a.pdf p.1], image 2 is [a.pdf p.3]" in prompt.user
    assert build_prompt("q", hits, images=True, max_images=1).images == [img1]
    assert build_prompt("q", hits, images=False).images == []


def test_page_text_is_cut_on_a_word_boundary_and_empty_pages_say_so():
    block = page_block(_hit("a.pdf", 1, "word " * 100), max_chars=23)
    assert block == "Page [a.pdf p.1]:\nword word word word …"
    assert "no text layer" in page_block(_hit("a.pdf", 2, "  "), max_chars=50)
    assert "No pages were found" in build_prompt("q", []).user


def test_bounded_image_keeps_aspect_and_budget(tmp_path):
    big = _png(tmp_path / "big.png", (1000, 400))
    img = bounded_image(big, max_pixels=40_000)
    assert img.width * img.height <= 40_000 and img.mode == "RGB"
    assert abs(img.width / img.height - 2.5) < 0.05
    small = bounded_image(_png(tmp_path / "s.png", (20, 10)), max_pixels=40_000)
    assert small.size == (20, 10)
    assert Image.open(__import__("io").BytesIO(png_bytes(img))).size == img.size
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DocumentLoadError, match="bad.png"):
        bounded_image(tmp_path / "bad.png")


def test_citations_models_write_are_read_and_matched_loosely():
    assert parse_citations("x [R-FAQ.pdf, p. 4] y [r-faq page 5; B.PDF p 2] [a pp. 9] [no cite]") == [
        ("R-FAQ.pdf", 4),
        ("r-faq", 5),
        ("B.PDF", 2),
        ("a", 9),
    ]
    hits = [_hit("/d/R-FAQ.pdf", 4, "t", score=0.9), _hit("/d/b.pdf", 2, "t", score=0.5)]
    result = resolve_citations("q", "[r-faq.PDF p.4] and [b p.2] and [b.pdf p.2] and [c.pdf p.1]", hits)
    cited = [(c.source, c.page, c.score) for c in result.citations]
    assert cited == [("/d/R-FAQ.pdf", 4, 0.9), ("/d/b.pdf", 2, 0.5)]
    assert result.unmatched_citations == ["[c.pdf p.1]"]


def test_make_generator_reads_the_spec(encoder):
    assert isinstance(make_generator("extractive", encoder=encoder), ExtractiveGenerator)
    with pytest.raises(ConfigurationError, match="needs the store's encoder"):
        make_generator("extractive")
    for bad in ("gpt-4", "ollama:", "hf:  ", "extractive:x"):
        with pytest.raises(ConfigurationError, match="unknown generator"):
            make_generator(bad, encoder=encoder)


def test_prompt_with_images_drops_an_unreadable_image_and_keeps_labels_in_step(tmp_path):
    from pagesight.pipelines.prompt import prompt_with_images

    good = _png(tmp_path / "good.png", (2000, 1000))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    hits = [_hit("a.pdf", 1, "one", bad), _hit("a.pdf", 2, "two", good)]
    with pytest.warns(UserWarning, match="bad.png"):
        prompt, images = prompt_with_images("q", hits, images=True, max_images=2, max_pixels=20_000)
    assert prompt.images == [good] and len(images) == 1
    assert images[0].width * images[0].height <= 20_000
    assert "image 1 is [a.pdf p.2]" in prompt.user and "p.1]," not in prompt.user
    none, no_images = prompt_with_images("q", hits, images=False)
    assert none.images == [] and no_images == []

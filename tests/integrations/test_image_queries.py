"""Image queries: Index.search(image=...) and both retrievers, with the tiny CLIP and the ColEmbed stand-in.

A page's own image, given as the query, must come back first (its vector or tokens are the query's);
a text-only model is refused with a typed error that names the models that take images.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("chromadb")
pytest.importorskip("torch")

from llama_index.core.schema import QueryBundle  # noqa: E402
from PIL import Image  # noqa: E402

from pagesight import Index  # noqa: E402
from pagesight.errors import (  # noqa: E402
    ConfigurationError,
    DocumentLoadError,
    ImageQueryError,
    ImageTooLargeError,
    SourceNotFoundError,
)
from pagesight.integrations import PageNodeRetriever, PageRetriever  # noqa: E402
from pagesight.retrieval.query_image import open_query_image  # noqa: E402
from pagesight.types import Hit  # noqa: E402
from tests.integrations.page_index import write_docs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*have no text layer", "ignore:.*non-commercial")


def _built(location: Path, docs: dict[str, Path], **create: object) -> Index:
    index = Index.create(location, **create)  # type: ignore[arg-type]
    report = index.add(list(docs.values()), show_progress=False, ocr="never")
    assert report.ok and report.pages_indexed == 5, report.summary()
    return index


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_docs(tmp_path_factory.mktemp("image-docs"))


@pytest.fixture(scope="module")
def clip_index(
    tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path, docs: dict[str, Path]
) -> Iterator[Index]:
    location = tmp_path_factory.mktemp("clip-index") / "store"
    with _built(location, docs, model=str(tiny_clip), kind="dense-vl", page_input="image") as index:
        yield index


@pytest.fixture(scope="module")
def late_index(
    tmp_path_factory: pytest.TempPathFactory, standin: Path, docs: dict[str, Path]
) -> Iterator[Index]:
    location = tmp_path_factory.mktemp("late-index") / "store"
    options = {
        "model": str(standin),
        "kind": "late-interaction",
        "page_input": "image",
        "trust_remote_code": True,
    }
    with _built(location, docs, **options) as index:
        yield index


def _drawing(index: Index) -> Hit:
    """network.pdf's page 3 (a drawing) as stored, with its image inside the store."""
    page = next(p for p in index.store.pages() if p.page == 3)
    assert page.image is not None and page.image.is_file()
    return page


def test_a_page_image_finds_its_own_page_in_a_dense_vl_store(clip_index: Index) -> None:
    page = _drawing(clip_index)
    hits = clip_index.search(image=page.image, k=5, mode="dense")
    assert hits[0].id == page.id and hits[0].score > 0.999 > hits[1].score
    with Image.open(page.image) as opened:
        as_pil = clip_index.search(image=opened.copy(), k=5, mode="dense")
    as_bytes = clip_index.search(image=page.image.read_bytes(), k=5, mode="dense")
    assert [h.id for h in as_pil] == [h.id for h in as_bytes] == [h.id for h in hits]
    hybrid = clip_index.search(image=page.image, k=5)  # no words: the image's dense hits alone
    assert [(h.id, h.score) for h in hybrid] == [(h.id, h.score) for h in hits]
    with_words = clip_index.search("firewall", image=page.image, k=5)  # fused with BM25 on the words
    assert {h.id for h in with_words} == {h.id for h in hits} and with_words != hybrid
    only_garden = clip_index.search(
        image=page.image, k=5, source=next(s.source for s in clip_index.sources() if "garden" in s.source)
    )
    assert len(only_garden) == 2 and page.id not in {h.id for h in only_garden}


def test_both_retrievers_take_a_query_image(clip_index: Index) -> None:
    page = _drawing(clip_index)
    want = [h.id for h in clip_index.search(image=page.image, k=3, mode="dense")]
    docs = PageRetriever(index=clip_index, k=3, mode="dense").invoke("", image=str(page.image))
    assert [d.id for d in docs] == want
    node_retriever = clip_index.as_llamaindex_retriever(similarity_top_k=3, mode="dense")
    assert [
        n.node.node_id for n in node_retriever.retrieve(QueryBundle("", image_path=str(page.image)))
    ] == want
    with Image.open(page.image) as opened:
        assert [n.node.node_id for n in node_retriever.image_retrieve(opened.copy())] == want


async def test_async_image_queries(clip_index: Index) -> None:
    page = _drawing(clip_index)
    docs = await PageRetriever(index=clip_index, k=1, mode="dense").ainvoke("", image=page.image.read_bytes())
    assert docs[0].id == page.id
    nodes = await PageNodeRetriever(clip_index, similarity_top_k=1, mode="dense").aimage_retrieve(page.image)
    assert nodes[0].node.node_id == page.id


def test_a_page_image_finds_its_own_page_in_a_colembed_store(late_index: Index) -> None:
    page = _drawing(late_index)
    hits = late_index.search(image=page.image, k=5, mode="dense")
    assert hits[0].id == page.id and hits[0].score > hits[1].score
    exact = late_index.search(image=page.image, k=5, mode="dense", exhaustive=True)
    assert [h.id for h in exact] == [h.id for h in hits]
    docs = late_index.as_langchain_retriever(k=2, mode="dense").invoke("", image=page.image)
    assert docs[0].id == page.id


def test_text_only_models_refuse_an_image_query_naming_the_models_that_take_one(page_store: Path) -> None:
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    with Index.open(page_store) as index:
        with pytest.raises(
            ImageQueryError, match=r"all-minilm.*embeds text only.*dense vision-language.*ColEmbed"
        ):
            index.search(image=red)
        with pytest.raises(ImageQueryError):
            PageRetriever(index=index).invoke("", image=red)
        with pytest.raises(ConfigurationError, match="mode 'bm25' searches words"):
            index.search(image=red, mode="bm25")


def test_bad_query_images_get_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="nowhere.png"):
        open_query_image(tmp_path / "nowhere.png")
    with pytest.raises(DocumentLoadError, match="query image.*not a PNG"):
        open_query_image(b"%PDF-1.7 not an image")
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        open_query_image(Image.new("RGB", (20, 20)), max_pixels=100)
    with pytest.raises(ImageQueryError, match="file path, a PIL image or encoded image bytes"):
        open_query_image(42)
    buffer = io.BytesIO()
    Image.new("RGBA", (6, 4), (0, 0, 255, 0)).save(buffer, format="PNG")
    opened = open_query_image(buffer.getvalue())
    assert opened.mode == "RGB" and opened.size == (6, 4) and opened.getpixel((0, 0)) == (255, 255, 255)

"""Contract tests of PageStore, run against embedded Chroma and a real Chroma server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, InvalidVectorError, StoreError, StoreMismatchError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import Hit, PageStore, SourceInfo

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

DIMS = 16
MINILM = EmbedderInfo("all-minilm-l6-v2", None, DIMS, "dense-text")
NOMIC = EmbedderInfo("nomic-embed-text-v1.5", "abcdef0123456789", 8, "dense-text")

MakePages = Callable[..., list[Page]]
Vectors = Callable[[int, int], np.ndarray]


def _image_files(store: PageStore) -> set[Path]:
    return {p for p in store.image_dir.rglob("*") if p.is_file()} if store.image_dir.exists() else set()


def _staging_files(pages: list[Page]) -> list[Path]:
    return [p.image for p in pages if p.image is not None]


# -- construction ---------------------------------------------------------------------------------


def test_constructor_is_cheap_and_validates(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "never-opened")
    assert not (tmp_path / "never-opened").exists()
    assert store.image_dir == tmp_path / "never-opened" / "images"
    with pytest.raises(ConfigurationError):
        PageStore()
    with pytest.raises(ConfigurationError):
        PageStore(tmp_path, url="http://127.0.0.1:8000")
    with pytest.raises(ConfigurationError, match="url"):
        PageStore(url="127.0.0.1:8000")


def test_server_store_defaults_image_dir_to_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = PageStore(url="http://127.0.0.1:8123", collection="docs")
    assert store.image_dir == tmp_path / "cache" / "pagesight" / "images" / "127.0.0.1-8123" / "docs"


@pytest.mark.enable_socket
def test_unreachable_server_raises_store_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = PageStore(url=f"http://127.0.0.1:{port}", image_dir=tmp_path)
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        store.count()


# -- the contract, on both backends -----------------------------------------------------------------


def test_new_store_is_empty(store: PageStore) -> None:
    assert store.count() == 0
    assert store.embedder is None
    assert store.sources() == []
    assert store.pages() == []
    assert store.source_hash("a.pdf") is None
    assert store.search(np.ones(DIMS, np.float32), embedder=MINILM) == []
    assert store.delete_source("a.pdf") == 0


def test_add_then_search_finds_own_vector_first(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    pages = make_pages("a.pdf", 5)
    vecs = vectors(5, DIMS)
    store.add_source(pages, vecs, embedder=MINILM)

    assert store.count() == 5
    for i, page in enumerate(pages):
        hits = store.search(vecs[i], k=3, embedder=MINILM)
        assert len(hits) == 3
        assert hits[0].id == page.id
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    best = store.search(vecs[2], k=1, embedder=MINILM)[0]
    assert best == Hit(
        id=pages[2].id,
        source="a.pdf",
        page=3,
        text="a.pdf page 3 v1",
        image=store.image_dir / f"{pages[2].content_hash[:2]}/{pages[2].content_hash[:32]}-p3.png",
        width=8,
        height=6,
        content_hash=pages[2].content_hash,
        score=best.score,
    )


def test_search_scores_are_cosine_similarity(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    vecs = vectors(4, DIMS)
    store.add_source(make_pages("a.pdf", 4, images=False), vecs * 3.0, embedder=MINILM)  # unnormalized
    query = vectors(1, DIMS)[0]
    hits = store.search(query, k=4, embedder=MINILM)
    expected = sorted((float(v @ query) for v in vecs), reverse=True)
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-4)


def test_search_k_and_source_filter(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    store.add_source(make_pages("a.pdf", 3), vectors(3, DIMS), embedder=MINILM)
    b = make_pages("b.pdf", 2)
    vb = vectors(2, DIMS)
    store.add_source(b, vb, embedder=MINILM)

    assert len(store.search(vb[0], k=100, embedder=MINILM)) == 5
    only_b = store.search(vb[0], k=10, embedder=MINILM, source="b.pdf")
    assert {h.source for h in only_b} == {"b.pdf"} and len(only_b) == 2
    assert store.search(vb[0], k=10, embedder=MINILM, source="missing.pdf") == []
    assert store.search(vb[0][None, :], k=1, embedder=MINILM)[0].id == b[0].id  # (1, d) accepted
    with pytest.raises(ConfigurationError, match="`k`"):
        store.search(vb[0], k=0, embedder=MINILM)


def test_images_move_into_store(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    pages = make_pages("a.pdf", 3)
    staging = _staging_files(pages)
    store.add_source(pages, vectors(3, DIMS), embedder=MINILM)

    assert not any(f.exists() for f in staging)
    hits = store.pages()
    for hit in hits:
        assert hit.image is not None and hit.image.is_file()
        assert hit.image.parent.parent == store.image_dir
        assert hit.image.name == f"{hit.content_hash[:32]}-p{hit.page}.png"
        assert hit.image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _image_files(store) == {h.image for h in hits}


def test_pages_without_images(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    store.add_source(make_pages("page.html", 2, images=False), vectors(2, DIMS), embedder=MINILM)
    assert [(h.image, h.width, h.height) for h in store.pages()] == [(None, 0, 0), (None, 0, 0)]
    assert _image_files(store) == set()


def test_readding_same_source_is_an_upsert(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    store.add_source(make_pages("a.pdf", 4), vectors(4, DIMS), embedder=MINILM)
    before = _image_files(store)
    again = make_pages("a.pdf", 4)  # same bytes, freshly rendered into staging
    store.add_source(again, vectors(4, DIMS), embedder=MINILM)

    assert store.count() == 4
    assert _image_files(store) == before
    assert not any(f.exists() for f in _staging_files(again))
    assert store.sources() == [SourceInfo("a.pdf", 4, again[0].content_hash)]


def test_changed_source_replaces_old_pages(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    old = make_pages("a.pdf", 4, version="v1")
    store.add_source(old, vectors(4, DIMS), embedder=MINILM)
    store.add_source(make_pages("b.pdf", 1), vectors(1, DIMS), embedder=MINILM)
    old_images = {h.image for h in store.pages("a.pdf")}

    new = make_pages("a.pdf", 2, version="v2")
    store.add_source(new, vectors(2, DIMS), embedder=MINILM)

    assert store.count() == 3
    assert [h.id for h in store.pages("a.pdf")] == [p.id for p in new]
    assert store.get([p.id for p in old]) == []
    assert store.source_hash("a.pdf") == new[0].content_hash
    assert store.source_info("a.pdf") == SourceInfo("a.pdf", 2, new[0].content_hash)
    assert store.source_info("missing.pdf") is None
    assert not any(f is not None and f.exists() for f in old_images)
    assert [h.text for h in store.pages("a.pdf")] == ["a.pdf page 1 v2", "a.pdf page 2 v2"]
    assert len(store.pages("b.pdf")) == 1


def test_delete_source_removes_records_and_images(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    store.add_source(make_pages("a.pdf", 3), vectors(3, DIMS), embedder=MINILM)
    store.add_source(make_pages("b.pdf", 2), vectors(2, DIMS), embedder=MINILM)
    a_images = {h.image for h in store.pages("a.pdf")}

    assert store.delete_source("a.pdf") == 3
    assert store.count() == 2
    assert not any(f is not None and f.exists() for f in a_images)
    assert _image_files(store) == {h.image for h in store.pages("b.pdf")}
    assert store.source_hash("a.pdf") is None
    assert store.delete_source("a.pdf") == 0


def test_sources_pages_get_and_hashes(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    b = make_pages("b.pdf", 2)
    a = make_pages("a.pdf", 3)
    store.add_source(b, vectors(2, DIMS), embedder=MINILM)
    store.add_source(list(reversed(a)), vectors(3, DIMS), embedder=MINILM)  # order of pages does not matter

    assert store.sources() == [
        SourceInfo("a.pdf", 3, a[0].content_hash),
        SourceInfo("b.pdf", 2, b[0].content_hash),
    ]
    assert [(h.source, h.page) for h in store.pages()] == [
        ("a.pdf", 1),
        ("a.pdf", 2),
        ("a.pdf", 3),
        ("b.pdf", 1),
        ("b.pdf", 2),
    ]
    assert all(h.score == 0.0 for h in store.pages())
    assert store.source_hash("b.pdf") == b[0].content_hash
    got = store.get([b[1].id, "missing-p1", a[0].id])
    assert [h.id for h in got] == [b[1].id, a[0].id]
    assert got[1].text == "a.pdf page 1 v1" and got[1].score == 0.0
    assert store.get([]) == []


def test_persists_across_reopening(
    open_store: Callable[[], PageStore], make_pages: MakePages, vectors: Vectors
) -> None:
    pages = make_pages("a.pdf", 3)
    vecs = vectors(3, DIMS)
    with open_store() as first:
        first.add_source(pages, vecs, embedder=MINILM)

    second = open_store()
    assert second.count() == 3
    assert second.embedder == MINILM
    assert second.search(vecs[1], k=1, embedder=MINILM)[0].id == pages[1].id
    assert all(h.image is not None and h.image.is_file() for h in second.pages())


def test_embedder_recorded_and_mismatch_refused(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    store.add_source(make_pages("a.pdf", 2), vectors(2, DIMS), embedder=MINILM)
    assert store.embedder == MINILM  # revision None survives the round trip through Chroma metadata

    pages = make_pages("b.pdf", 2)
    with pytest.raises(StoreMismatchError) as write_err:
        store.add_source(pages, vectors(2, NOMIC.dimensions), embedder=NOMIC)
    message = str(write_err.value)
    assert MINILM.describe() in message and NOMIC.describe() in message
    assert "refusing to write" in message
    assert store.count() == 2 and all(f.exists() for f in _staging_files(pages))

    with pytest.raises(StoreMismatchError) as search_err:
        store.search(vectors(1, NOMIC.dimensions)[0], embedder=NOMIC)
    assert MINILM.describe() in str(search_err.value) and NOMIC.describe() in str(search_err.value)

    same_dims_other_model = EmbedderInfo("other-model", None, DIMS, "dense-text")
    with pytest.raises(StoreMismatchError):
        store.search(vectors(1, DIMS)[0], embedder=same_dims_other_model)


def test_emptied_store_accepts_another_embedder(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    store.add_source(make_pages("a.pdf", 2), vectors(2, DIMS), embedder=MINILM)
    store.delete_source("a.pdf")
    assert store.embedder is None
    store.add_source(make_pages("a.pdf", 2), vectors(2, NOMIC.dimensions), embedder=NOMIC)
    assert store.embedder == NOMIC
    assert store.count() == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors_refused_and_nothing_written(
    store: PageStore, make_pages: MakePages, vectors: Vectors, bad: float
) -> None:
    store.add_source(make_pages("a.pdf", 1), vectors(1, DIMS), embedder=MINILM)
    images_before = _image_files(store)
    pages = make_pages("b.pdf", 4)
    vecs = vectors(4, DIMS)
    vecs[2, 5] = bad
    with pytest.raises(InvalidVectorError, match=r"b\.pdf \(page 3\)"):
        store.add_source(pages, vecs, embedder=MINILM)
    assert store.count() == 1
    assert _image_files(store) == images_before
    assert all(f.exists() for f in _staging_files(pages))


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((3, DIMS), np.float32), ((4, DIMS + 1), np.float32), ((4,), np.float32), ((4, DIMS), np.int64)],
)
def test_wrong_shape_or_dtype_refused(
    store: PageStore, make_pages: MakePages, shape: tuple[int, ...], dtype: type
) -> None:
    pages = make_pages("a.pdf", 4)
    with pytest.raises(InvalidVectorError, match=r"a\.pdf"):
        store.add_source(pages, np.ones(shape, dtype), embedder=MINILM)
    assert store.count() == 0
    assert all(f.exists() for f in _staging_files(pages))


def test_bad_query_refused(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    store.add_source(make_pages("a.pdf", 1), vectors(1, DIMS), embedder=MINILM)
    with pytest.raises(InvalidVectorError, match="shape"):
        store.search(np.ones(DIMS + 1, np.float32), embedder=MINILM)
    with pytest.raises(InvalidVectorError, match="NaN"):
        store.search(np.full(DIMS, np.nan, np.float32), embedder=MINILM)


def test_inconsistent_pages_refused(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    mixed = make_pages("a.pdf", 1) + make_pages("b.pdf", 1)
    with pytest.raises(StoreError, match="one source"):
        store.add_source(mixed, vectors(2, DIMS), embedder=MINILM)
    twice = make_pages("a.pdf", 1) * 2
    with pytest.raises(StoreError, match="repeated"):
        store.add_source(twice, vectors(2, DIMS), embedder=MINILM)
    gone = make_pages("a.pdf", 1)
    assert gone[0].image is not None
    gone[0].image.unlink()
    with pytest.raises(StoreError, match="does not exist"):
        store.add_source(gone, vectors(1, DIMS), embedder=MINILM)
    assert store.count() == 0


def test_batches_respect_limit(
    store: PageStore, make_pages: MakePages, vectors: Vectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store._batch_size() == store.backend.client.get_max_batch_size()  # the client limit by default
    calls: list[int] = []
    pages = make_pages("big.pdf", 7)
    store.max_batch_size = 3
    col = store.backend.collection()
    real_upsert = col.upsert

    def counting_upsert(**kwargs: object) -> None:
        calls.append(len(kwargs["ids"]))  # type: ignore[arg-type]
        real_upsert(**kwargs)

    monkeypatch.setattr(col, "upsert", counting_upsert)
    store.add_source(pages, vectors(7, DIMS), embedder=MINILM)
    assert calls == [3, 3, 1]
    assert store.count() == 7
    assert len(store.pages()) == 7  # listing pages through limit/offset in batches of 3
    assert store.sources() == [SourceInfo("big.pdf", 7, pages[0].content_hash)]
    assert len(store.get([p.id for p in pages])) == 7
    assert store.delete_source("big.pdf") == 7


def test_failure_midway_rolls_back(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    kept = make_pages("a.pdf", 2)
    store.add_source(kept, vectors(2, DIMS), embedder=MINILM)
    images_before = _image_files(store)
    store.max_batch_size = 2

    # The last page's text holds a lone surrogate that cannot be encoded as UTF-8: Chroma accepts
    # the first two batches and rejects the third.
    texts = ["one", "two", "three", "four", "bad \ud800 text"]
    pages = make_pages("b.pdf", 5, texts=texts)
    with pytest.raises(StoreError, match=r"pages 5-5 of b\.pdf") as err:
        store.add_source(pages, vectors(5, DIMS), embedder=MINILM)
    assert store.location in str(err.value)

    assert store.count() == 2
    assert store.get([p.id for p in pages]) == []
    assert store.sources() == [SourceInfo("a.pdf", 2, kept[0].content_hash)]
    assert _image_files(store) == images_before
    assert all(f.exists() for f in _staging_files(pages))  # the caller can retry


def test_failed_rewrite_keeps_pages_that_were_there(
    store: PageStore, make_pages: MakePages, vectors: Vectors
) -> None:
    store.add_source(make_pages("a.pdf", 3), vectors(3, DIMS), embedder=MINILM)
    images_before = _image_files(store)
    store.max_batch_size = 2
    again = make_pages("a.pdf", 3, texts=["one", "two", "\udcff"])
    with pytest.raises(StoreError):
        store.add_source(again, vectors(3, DIMS), embedder=MINILM)
    assert store.count() == 3
    assert _image_files(store) == images_before


def test_concurrent_first_use_opens_once(store: PageStore) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            store.count()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count() == 0


def test_image_failure_midway_rolls_back(store: PageStore, make_pages: MakePages, vectors: Vectors) -> None:
    pages = make_pages("a.pdf", 4)
    # A folder squatting on page 3's image name makes the rename onto it fail for real.
    blocker = store.image_dir / f"{pages[0].content_hash[:2]}/{pages[0].content_hash[:32]}-p3.png"
    blocker.mkdir(parents=True)
    with pytest.raises(StoreError, match=r"a\.pdf \(page 3\): could not copy its image"):
        store.add_source(pages, vectors(4, DIMS), embedder=MINILM)
    assert store.count() == 0
    assert _image_files(store) == set()
    assert blocker.is_dir()
    assert all(f.exists() for f in _staging_files(pages))

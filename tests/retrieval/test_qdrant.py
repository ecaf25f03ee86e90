"""The Qdrant backend in Qdrant's local mode: late-interaction pages, prefetch + MAX_SIM search.

A Qdrant server cannot run here (no binary on PyPI or apt); the same client code talks to one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, StoreError, StoreMismatchError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.maxsim import maxsim_reference
from pagesight.retrieval.store.open import open_backend, open_multivector_store, open_store
from pagesight.retrieval.store.qdrant import QdrantBackend

pytest.importorskip("qdrant_client", reason="the qdrant extra is not installed")

DIM = 16
TOY = EmbedderInfo("toy-colbert", "0123456789abcdef", DIM, "late-interaction")
MakePages = Callable[..., list[Page]]


def mats_for(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = rng.standard_normal((int(rng.integers(3, 12)), DIM)).astype(np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def test_schemes_open_qdrant_backends(tmp_path: Path) -> None:
    local = open_backend(f"qdrant+path://{tmp_path / 'q'}")
    assert isinstance(local, QdrantBackend) and local.folder == tmp_path / "q"
    server = open_backend("qdrant://qdrant.internal:6334/docs")
    assert isinstance(server, QdrantBackend) and server.folder is None
    assert "qdrant.internal:6334" in server.location and "docs" in server.location
    assert not server.connected  # constructing opens nothing
    with pytest.raises(ConfigurationError, match="host"):
        open_backend("qdrant:///docs")
    with pytest.raises(ConfigurationError, match="headers"):
        open_backend("qdrant://h:1/c", headers={"Authorization": "x"})


def test_late_interaction_pages_in_qdrant_local_mode(tmp_path: Path, make_pages: MakePages) -> None:
    location = f"qdrant+path://{tmp_path / 'q'}"
    images = tmp_path / "shared-images"  # the folder every machine reading the store mounts
    store = open_multivector_store(location, image_dir=images)
    mats = mats_for(1, 30)
    store.add_source(make_pages("a.pdf", 20), mats[:20], embedder=TOY)
    store.add_source(make_pages("b.pdf", 10), mats[20:], embedder=TOY)
    assert store.count() == 30
    assert {s.source: s.pages for s in store.sources()} == {"a.pdf": 20, "b.pdf": 10}
    pages = store.pages("a.pdf")
    assert all(h.image is not None and h.image.is_file() and images in h.image.parents for h in pages)
    ids = [h.id for h in store.pages()]
    order = {h.id: m for h, m in zip(store.pages("a.pdf") + store.pages("b.pdf"), mats, strict=True)}
    q = mats[4][:3]
    ref = maxsim_reference(q, [order[i] for i in ids])
    exact = store.search(q, k=5, embedder=TOY, exhaustive=True)  # Qdrant MAX_SIM over every point
    assert [h.id for h in exact] == [ids[i] for i in np.argsort(-ref)[:5]]
    assert exact[0].score == pytest.approx(float(ref.max()), abs=1e-4)
    two_stage = store.search(q, k=5, embedder=TOY, candidates=30)  # prefetch all 30: same as exact
    assert [h.id for h in two_stage] == [h.id for h in exact]
    only_b = store.search(q, k=3, embedder=TOY, source="b.pdf", exhaustive=True)
    assert only_b and {h.source for h in only_b} == {"b.pdf"}
    np.testing.assert_allclose(store.get_tokens([ids[0]])[0], order[ids[0]], atol=1e-6)
    assert store.delete_source("a.pdf") == 20
    assert store.count() == 10 and all(h.source == "b.pdf" for h in store.search(q, k=10, embedder=TOY))
    health = store.check()
    assert health.records_without_tokens == ()
    store.close()
    # reopened from the location alone: the options and embedder come from the collection metadata
    again = open_store(location)
    assert again.multivector and again.embedder == TOY and again.count() == 10
    with pytest.raises(StoreError, match="another instance"):  # local mode: one process at a time
        open_multivector_store(location, image_dir=images).count()
    again.close()
    other = open_multivector_store(location, storage="int8", image_dir=images)
    with pytest.raises(StoreMismatchError, match="storage"):
        other.count()
    other.close()
    with pytest.raises(ConfigurationError, match="runs MaxSim itself"):  # no token index beside Qdrant
        open_multivector_store(location, candidates_from="centroids", image_dir=images)


def test_server_stores_keep_page_images_in_the_shared_folder_the_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pagesight.retrieval.store import PageStore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PAGESIGHT_IMAGE_DIR", raising=False)
    qdrant = open_backend("qdrant://qdrant.internal:6334/docs")
    assert (
        qdrant.local_dir("images")
        == tmp_path / "cache" / "pagesight" / "images" / "qdrant-qdrant.internal-6334" / "docs"
    )
    shared = tmp_path / "nfs" / "pages"
    monkeypatch.setenv("PAGESIGHT_IMAGE_DIR", str(shared))
    assert open_backend("qdrant://qdrant.internal:6334/docs").local_dir("images") == (
        shared / "qdrant-qdrant.internal-6334" / "docs"
    )
    chroma = PageStore(url="http://chroma.internal:8000", collection="team")  # opens nothing
    assert chroma.image_dir == shared / "chroma.internal-8000" / "team"
    assert chroma.backend.local_dir("tokens").is_relative_to(tmp_path / "cache")  # only images move
    local = open_backend(f"qdrant+path://{tmp_path / 'q'}")
    assert local.local_dir("images") == tmp_path / "q" / "images"  # a folder store keeps its own
    assert not shared.exists()  # nothing created before the first write

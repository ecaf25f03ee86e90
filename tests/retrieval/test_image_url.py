"""Page images at an fsspec URL: an S3 server on loopback (moto's, the real S3 protocol through s3fs),
shared by two "machines" (stores with separate local caches), rollback, deletes, hostile content."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.errors import ConfigurationError, StoreError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import PageStore
from pagesight.retrieval.store import _remote_images as ri
from pagesight.retrieval.store._remote_images import is_url

pytest.importorskip("s3fs", reason="the s3 extra is not installed")
pytest.importorskip("moto.server", reason="moto[server] (a dev dependency) is not installed")

DIMS = 8
INFO = EmbedderInfo("all-minilm-l6-v2", None, DIMS, "dense-text")
pytestmark = pytest.mark.enable_socket


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """moto's S3 server on a free loopback port; yields the s3fs storage options that reach it."""
    import os

    from moto.server import ThreadedMotoServer

    keys = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield {"endpoint_url": f"http://{host}:{port}"}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3: dict[str, Any], request: pytest.FixtureRequest) -> str:
    import s3fs

    name = f"pages-{abs(hash(request.node.name)) % 10**8}"
    fs = s3fs.S3FileSystem(**s3, skip_instance_cache=True)
    if not fs.exists(name):
        fs.mkdir(name)
    return name


def remote(s3: dict[str, Any], path: str) -> dict[str, bytes]:
    """Every object under ``path`` (``bucket/prefix``) with its bytes, read with a fresh client."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3, skip_instance_cache=True)
    return {p[len(path) + 1 :]: fs.cat_file(p) for p in fs.find(path)}


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_is_url_tells_urls_from_folders() -> None:
    assert (
        is_url("s3://bucket/pages")
        and is_url("gcs://b")
        and is_url("sftp://host/x")
        and is_url("file:///tmp/x")
    )
    assert not any(is_url(x) for x in ("/tmp/pages", "pages", "C:\\pages", "c://x", "://x", Path("/a/b")))


def test_two_machines_share_page_images_through_s3(
    s3: dict[str, Any], bucket: str, tmp_path: Path, make_pages: Callable[..., list[Any]]
) -> None:
    url = f"s3://{bucket}/store-a"
    pages = make_pages("a.pdf", 3)
    staged = {p.page: Path(p.image).read_bytes() for p in pages}
    # machine A writes: its images go to the URL before the records, its folder is a cache
    a = PageStore(tmp_path / "db", image_dir=url, image_storage_options=s3)
    a.add_source(pages, vectors(3), embedder=INFO)
    assert a.image_url == url and a.image_dir == tmp_path / "db" / "images"
    objects = remote(s3, f"{bucket}/store-a")
    assert sorted(objects.values()) == sorted(staged.values()) and len(objects) == 3
    a.close()

    # machine B: the same records, an empty cache of its own; hits fetch their images from the URL
    b = PageStore(tmp_path / "db", image_dir=url, image_storage_options=s3)
    b._image_dir = tmp_path / "machine-b-cache"  # noqa: SLF001 (another machine's local folder)
    hits = b.search(vectors(3)[1], k=3, embedder=INFO)
    assert len(hits) == 3 and all(h.image is not None for h in hits)
    assert {h.page: h.image.read_bytes() for h in hits if h.image} == staged
    assert all(str(h.image).startswith(str(tmp_path / "machine-b-cache")) for h in hits)
    # what it has not fetched counts as present: the source is indexed, the store is healthy
    for h in hits[1:]:
        assert h.image is not None
        h.image.unlink()
    assert b.source_info("a.pdf") is not None
    health = b.check()
    assert health.ok, health.problems()
    assert health.image_files == 3

    # deleting on B removes the images at the URL too
    assert b.delete_source("a.pdf") == 3
    assert remote(s3, f"{bucket}/store-a") == {}
    b.close()


def test_server_store_takes_the_url_from_pagesight_image_dir(
    s3: dict[str, Any],
    bucket: str,
    chroma_server: str,
    tmp_path: Path,
    make_pages: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAGESIGHT_IMAGE_DIR", f"s3://{bucket}/shared")
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", s3["endpoint_url"])  # fsspec's own configuration
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import fsspec.config

    monkeypatch.setattr(fsspec.config, "conf", {})
    fsspec.config.set_conf_env(fsspec.config.conf)
    port = chroma_server.rsplit(":", 1)[1]
    store = PageStore(url=chroma_server, collection="image-url")
    try:
        assert store.image_url == f"s3://{bucket}/shared/127.0.0.1-{port}/image-url"
        assert (
            store.image_dir == tmp_path / "cache" / "pagesight" / "images" / f"127.0.0.1-{port}" / "image-url"
        )
        store.add_source(make_pages("b.pdf", 2), vectors(2), embedder=INFO)
        assert len(remote(s3, f"{bucket}/shared/127.0.0.1-{port}/image-url")) == 2
    finally:
        store.delete_source("b.pdf")
        store.close()


def test_a_failed_write_leaves_nothing_at_the_url(
    s3: dict[str, Any], bucket: str, tmp_path: Path, make_pages: Callable[..., list[Any]]
) -> None:
    pages = make_pages("c.pdf", 3)
    Path(pages[2].image).unlink()  # the third page's image vanished from staging: the write fails there
    store = PageStore(tmp_path / "db", image_dir=f"s3://{bucket}/c", image_storage_options=s3)
    with pytest.raises(StoreError, match="c.pdf"):
        store.add_source(pages, vectors(3), embedder=INFO)
    assert store.count() == 0
    assert remote(s3, f"{bucket}/c") == {}  # the two images uploaded before the failure are gone
    store.close()


def test_an_unreachable_url_is_a_clear_error_and_writes_nothing(
    tmp_path: Path, make_pages: Callable[..., list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    options = {
        "endpoint_url": "http://127.0.0.1:9",  # the discard port: nothing listens
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = PageStore(tmp_path / "db", image_dir="s3://nowhere/pages", image_storage_options=options)
    with pytest.raises(StoreError, match=r"page images at s3://nowhere/pages: .*failed.*credentials"):
        store.add_source(make_pages("d.pdf", 2), vectors(2), embedder=INFO)
    assert store.count() == 0
    store.close()
    bad = PageStore(tmp_path / "db2", image_dir="s3://nowhere/pages", image_storage_options={"no_such": 1})
    with pytest.raises(ConfigurationError, match="storage options"):
        bad.add_source(make_pages("e.pdf", 1), vectors(1), embedder=INFO)
    bad.close()


def test_hostile_content_at_the_url_is_refused(
    s3: dict[str, Any],
    bucket: str,
    tmp_path: Path,
    make_pages: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import s3fs

    url = f"s3://{bucket}/h"
    store = PageStore(tmp_path / "db", image_dir=url, image_storage_options=s3)
    store.add_source(make_pages("h.pdf", 2), vectors(2), embedder=INFO)
    fs = s3fs.S3FileSystem(**s3, skip_instance_cache=True)
    rel = next(iter(remote(s3, f"{bucket}/h")))
    fs.pipe_file(f"{bucket}/h/{rel}", b"x" * 5000)  # the shared copy was replaced by something large
    fs.pipe_file(f"{bucket}/h/../escape.png", b"y")  # a key that climbs out of the image folder
    for p in (tmp_path / "db" / "images").rglob("*.png"):
        p.unlink()  # a fresh machine's cache
    monkeypatch.setattr(ri, "MAX_IMAGE_BYTES", 4096)
    with caplog.at_level(logging.WARNING):
        hits = store.search(vectors(2)[0], k=2, embedder=INFO)
    by_rel = {h.id: h.image for h in hits}
    assert sum(image is None for image in by_rel.values()) == 1  # the oversized one is not fetched
    assert "5000 bytes" in caplog.text
    assert not (tmp_path / "db" / "escape.png").exists()
    health = store.check()
    assert any("escape.png" in r for r in health.refused_paths)
    store.close()

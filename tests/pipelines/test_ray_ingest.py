"""Ingest on Ray Data (``executor="ray"``) against single-process ingest of the same sources.

One local Ray instance (2 CPUs) for the module; a real Chroma server (``chroma run``) for the
server-store test. The reference is a single-process ingest into an embedded store.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.errors import ConfigurationError, PagesightError
from pagesight.pipelines.distributed import RayExecutor, _staging_root, as_executor
from pagesight.pipelines.ingest import IngestReport, ingest
from pagesight.retrieval.store import PageStore
from tests.pipelines.conftest import GARDEN, NETWORK, write_pdf
from tests.retrieval import conftest as retrieval_fixtures

ray = pytest.importorskip("ray", reason='needs Ray Data: pip install "pagesight[ray]"')

chroma_server = retrieval_fixtures.chroma_server  # the real `chroma run` fixture of tests/retrieval

OPTIONS: dict[str, Any] = {"ocr": "never", "show_progress": False}


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """A local Ray instance with 2 CPUs for the whole module, shut down after it."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=150 * 1024**2,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ray-docs")
    bad = folder / "broken.pdf"
    bad.write_bytes(b"this is not a PDF at all")
    return {
        "garden": write_pdf(folder / "garden.pdf", GARDEN),
        "network": write_pdf(folder / "network.pdf", NETWORK),
        "bad": bad,
    }


@pytest.fixture(scope="module")
def reference(
    docs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[PageStore, IngestReport]:
    """Single-process ingest of the same sources into an embedded store."""
    from pagesight.models.matryoshka import MatryoshkaEncoder

    store = PageStore(tmp_path_factory.mktemp("ray-ref") / "store")
    report = ingest(list(docs.values()), store, MatryoshkaEncoder("all-minilm-l6-v2"), **OPTIONS)
    return store, report


def _fresh_encoder() -> Any:
    from pagesight.models.matryoshka import MatryoshkaEncoder

    return MatryoshkaEncoder("all-minilm-l6-v2")  # not loaded: each actor loads its own copy


def _records(store: PageStore) -> dict[str, tuple[str, dict[str, Any], np.ndarray]]:
    """Every record: id -> (text, metadata without the image path, vector)."""
    ids = store.ids()
    got = store.backend.collection().get(ids=ids, include=["documents", "metadatas", "embeddings"])  # type: ignore[attr-defined]
    out = {}
    for id_, doc, meta, vec in zip(
        got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
    ):
        meta = {k: v for k, v in meta.items() if k != "image"}
        out[id_] = (doc, meta, np.asarray(vec, dtype=np.float32))
    return out


def _same_records(store: PageStore, reference: PageStore) -> None:
    mine, ref = _records(store), _records(reference)
    assert sorted(mine) == sorted(ref) and ref
    for id_, (text, meta, vec) in ref.items():
        assert mine[id_][0] == text
        assert mine[id_][1] == meta
        np.testing.assert_allclose(mine[id_][2], vec, atol=1e-5, rtol=0)
    # the page images are the same files
    for hit in reference.pages():
        other = store.get([hit.id])[0]
        assert (hit.image is None) == (other.image is None)
        if hit.image is not None and other.image is not None:
            assert other.image.read_bytes() == hit.image.read_bytes()


def _outcome(report: IngestReport) -> list[tuple[str, str, int, str | None]]:
    return [(r.source, r.status, r.pages, r.error) for r in report.results]


@pytest.mark.slow
@pytest.mark.enable_socket
def test_ray_into_a_chroma_server_equals_single_process_and_rerun_skips(
    ray_local: None,
    docs: dict[str, Path],
    reference: tuple[PageStore, IngestReport],
    chroma_server: str,
    tmp_path: Path,
) -> None:
    ref_store, ref_report = reference
    store = PageStore(
        url=chroma_server, collection=f"ray-{uuid.uuid4().hex[:8]}", image_dir=tmp_path / "images"
    )
    seen: list[str] = []
    progress: list[Any] = []
    report = ingest(
        list(docs.values()),
        store,
        _fresh_encoder(),
        executor="ray",
        on_result=lambda r: seen.append(r.source),
        on_progress=progress.append,
        **OPTIONS,
    )
    # the same report: two sources indexed, the broken one failed with the same reason, nothing of it stored
    assert _outcome(report) == _outcome(ref_report)
    assert [r.source for r in report.failed] == [str(docs["bad"])]
    assert "not a PDF" in (report.failed[0].error or "")
    assert sorted(seen) == sorted(str(p) for p in docs.values())
    assert report.summary() == ref_report.summary()
    # progress as single-process ingest gives it: pages counted once each, every source finished
    last = progress[-1]
    assert (last.pages_done, last.pages_total, last.sources_done, last.sources_total) == (5, 5, 3, 3)
    assert [u.pages_done for u in progress] == sorted(u.pages_done for u in progress)
    assert sum(u.result is not None for u in progress) == 3
    _same_records(store, ref_store)
    assert not list(tmp_path.glob(".staging-*"))  # staging folders are gone

    # a re-run finds every good source stored with the same bytes: skipped before Ray is asked
    good = [docs["garden"], docs["network"]]
    again = ingest(good, store, _fresh_encoder(), executor="ray", **OPTIONS)
    assert {r.source: r.status for r in again.results} == {str(p): "unchanged" for p in good}
    assert [r.pages for r in again.results] == [2, 3]
    assert store.count() == ref_store.count()


class KillOnce:
    """A real encoder whose process kills itself (SIGKILL) on its first batch, once per marker file,
    and that refuses pages reading POISON."""

    def __init__(self, inner: Any, marker: Path) -> None:
        self.inner = inner
        self.marker = str(marker)

    @property
    def info(self) -> Any:
        return self.inner.info

    def encode_pages(self, pages: Any) -> Any:
        for p in pages:
            if "POISON" in p.text:  # an encoder error: this source fails, the others land
                raise PagesightError(f"{p.source} (page {p.page}): the encoder refused this page")
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.encode_pages(pages)

    def encode_queries(self, texts: Any) -> Any:
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts: Any) -> Any:
        return self.inner.encode_documents(texts)


@pytest.mark.slow
def test_a_worker_killed_mid_job_and_a_resumed_job_give_the_same_store(
    ray_local: None, docs: dict[str, Path], reference: tuple[PageStore, IngestReport], tmp_path: Path
) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import tests/
    store = PageStore(tmp_path / "store")
    # a job killed after its first source: that source is committed, the rest is not
    first = ingest([docs["garden"]], store, _fresh_encoder(), **OPTIONS)
    assert first.ok
    marker = tmp_path / "killed"
    poison = write_pdf(tmp_path / "poison.pdf", ["A harmless first page.", "POISON on the second page."])
    killer = KillOnce(_fresh_encoder(), marker)
    report = ingest([*docs.values(), poison], store, killer, executor="ray", **OPTIONS)
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # an embedding worker was killed
    statuses = {r.source: r.status for r in report.results}
    assert statuses == {
        str(docs["garden"]): "unchanged",
        str(docs["network"]): "indexed",
        str(docs["bad"]): "failed",
        str(poison): "failed",
    }
    assert "the encoder refused this page" in (report.results[-1].error or "")
    assert not store.pages(str(poison))  # nothing of the poisoned source, not even its first page
    _same_records(store, reference[0])
    assert store.check().ok  # no leftover journal, staging folder or unused image


@pytest.mark.slow
def test_cli_index_with_ray(
    ray_local: None, encoder: Any, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ray` on a store an older pagesight wrote (names as typed), with --force: as single-process
    ingest, the changed file's old name is dropped, the unchanged one is written again (not skipped),
    and the run shows pagesight's progress lines and the per-source lines."""
    from pagesight.cli import main
    from pagesight.documents import load_pdf

    monkeypatch.chdir(tmp_path)
    write_pdf(tmp_path / "a.pdf", GARDEN)
    write_pdf(tmp_path / "b.pdf", NETWORK)
    old = PageStore(tmp_path / "s")
    for name in ("a.pdf", "./b.pdf"):  # the path as typed, as stores were written before absolute names
        pages = list(load_pdf(name, source=name, image_dir=tmp_path / "staging", ocr="never"))
        old.add_source(pages, encoder.encode_pages(pages), embedder=encoder.info)
    old.close()
    write_pdf(tmp_path / "a.pdf", [*GARDEN, "A third page about mulching in autumn."])  # a.pdf changes

    argv = ["index", "a.pdf", "b.pdf", "--store", "s", "--profile", "offline", "--ocr", "never", "--force"]
    code = main([*argv, "--ray"])
    err = capsys.readouterr().err
    assert code == 0, err
    a, b = str(tmp_path / "a.pdf"), str(tmp_path / "b.pdf")
    assert f"  indexed    {a} (3 pages)" in err and f"  indexed    {b} (3 pages)" in err  # b: --force
    assert "2 source(s) indexed (6 pages)" in err
    assert "indexing 2 source(s), 6 pages" in err  # pagesight's whole-run progress (not a TTY: lines)
    assert "indexed 6 pages in " in err
    store = PageStore(tmp_path / "s")
    assert [(s.source, s.pages) for s in store.sources()] == [(a, 3), (b, 3)]  # old names gone
    assert store.count() == 6 and store.check().ok
    store.close()


def test_executor_values_and_a_cluster_without_a_shared_folder(tmp_path: Path) -> None:
    assert as_executor("local") is None and as_executor(None) is None
    assert as_executor("ray") == RayExecutor()
    with pytest.raises(ConfigurationError, match="executor"):
        as_executor("spark")
    store = PageStore(tmp_path / "store")
    two_nodes = [{"Alive": True}, {"Alive": True}]
    with pytest.raises(ConfigurationError, match="shared_dir"):
        _staging_root(store, RayExecutor(), two_nodes)
    assert _staging_root(store, RayExecutor(shared_dir=tmp_path / "shared"), two_nodes) == tmp_path / "shared"
    assert _staging_root(store, RayExecutor(), [{"Alive": True}, {"Alive": False}]) == store.image_dir.parent


def test_cli_refuses_a_source_where_the_ray_address_goes(tmp_path: Path, capsys: Any) -> None:
    from pagesight.cli import main

    store = str(tmp_path / "s")
    assert main(["index", "a.pdf", "--ray", "b.pdf", "--store", store, "--profile", "offline"]) == 2
    assert "put the sources before --ray" in capsys.readouterr().err
    assert (
        main(["index", "a.pdf", "--ray-shared-dir", str(tmp_path), "--store", store, "--profile", "offline"])
        == 2
    )
    assert "--ray-shared-dir applies with --ray" in capsys.readouterr().err
    assert not Path(store).exists()

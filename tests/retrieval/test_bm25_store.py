"""BM25 saved in the store (issue 16 item 4): equal to a from-scratch build after any history, kept
current across processes, rebuilt after a write a crash cut short.

The reference is always an index built in one go over the pages the store holds at that moment
(:meth:`SegmentedBM25.build`), and for the formula itself bm25s (:class:`BM25Index`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from pagesight.documents.page import Page
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.bm25 import MANIFEST, SegmentedBM25
from pagesight.retrieval.hybrid import BM25Index
from pagesight.retrieval.store import PageStore
from pagesight.retrieval.store._bm25 import PENDING, STAMP_KEY

INFO = EmbedderInfo(model="bm25-test/toy", revision=None, dimensions=4, kind="dense-text")
WORDS = [
    "ssh",
    "port",
    "forwarding",
    "tunnel",
    "firewall",
    "packet",
    "filter",
    "compost",
    "heap",
    "tomato",
    "seedling",
    "mount",
    "usb",
    "stick",
    "fixed",
    "width",
    "file",
    "reader",
    "csv",
    "column",
    "parser",
    "kernel",
    "module",
    "driver",
]
QUERIES = ["ssh port", "fixed width files", "compost compost tomato", "kernel", "nothing here", "usb usb usb"]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))


def _pages(source: str, texts: list[str], version: str = "v1") -> list[Page]:
    digest = hashlib.sha256(f"{source}|{version}".encode()).hexdigest()
    return [Page(source, i, t, None, 0, 0, digest) for i, t in enumerate(texts, start=1)]


def _add(store: PageStore, pages: list[Page]) -> None:
    store.add_source(pages, np.ones((len(pages), 4), dtype=np.float32), embedder=INFO)


def _scratch(store: PageStore) -> SegmentedBM25:
    return SegmentedBM25.build(None, [(h.id, h.text) for h in store.pages()])


def _same(index: SegmentedBM25, reference: SegmentedBM25) -> None:
    assert len(index) == len(reference)
    assert index.ids() == reference.ids()
    for q in QUERIES:
        assert index.search(q, 50) == reference.search(q, 50), q


# -- the index alone ----------------------------------------------------------------------------------


def test_scores_equal_bm25s_and_survive_adds_deletes_and_reopen(tmp_path: Path) -> None:
    rng = random.Random(7)
    docs = {f"d{i:03d}": _text(rng) for i in range(240)}
    index = SegmentedBM25.create(tmp_path / "bm25")
    items = list(docs.items())
    live: dict[str, str] = {}
    for start in range(0, len(items), 9):
        index.apply(adds=items[start : start + 9])
        live.update(items[start : start + 9])
        doomed = rng.sample(sorted(live), 3)
        index.apply(deletes=doomed)
        for d in doomed:
            live.pop(d)
    replaced = {d: _text(rng) for d in rng.sample(sorted(live), 20)}  # upserts: new text, same id
    index.apply(adds=list(replaced.items()))
    live.update(replaced)
    assert index.segment_count < 8  # tiered merging keeps few segments
    reopened = SegmentedBM25.open(tmp_path / "bm25")
    assert reopened is not None
    _same(reopened, SegmentedBM25.build(None, live.items()))
    bm25s = BM25Index.build(sorted(live), [live[d] for d in sorted(live)])
    for q in QUERIES:
        ours, theirs = reopened.search(q, 30), bm25s.search(q, 30)
        assert [i for i, _ in ours] == [i for i, _ in theirs], q
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=1e-5)


def test_top_k_breaks_ties_by_id_like_a_full_sort(tmp_path: Path) -> None:
    index = SegmentedBM25.create(tmp_path / "bm25")
    for batch in range(4):  # same text on every page: every score ties, across several segments
        index.apply(adds=[(f"p{batch}-{i}", "ssh port") for i in range(5)])
    hits = index.search("ssh", 7)
    assert [i for i, _ in hits] == sorted(f"p{b}-{i}" for b in range(4) for i in range(5))[:7]
    assert index.search("ssh", 0) == [] and index.search("", 5) == [] and index.search("zzz", 5) == []


def test_open_reads_only_the_manifest_until_the_first_query(tmp_path: Path) -> None:
    index = SegmentedBM25.build(tmp_path / "bm25", [("a", "ssh port"), ("b", "compost")])
    (seg,) = [p for p in (tmp_path / "bm25").iterdir() if p.name.startswith("seg-")]
    (seg / "post_tf.npy").rename(seg / "moved.npy")
    lazy = SegmentedBM25.open(tmp_path / "bm25")
    assert lazy is not None and len(lazy) == 2 and lazy.generation == index.generation
    from pagesight.errors import StoreError

    with pytest.raises(StoreError, match="unreadable"):
        lazy.search("ssh", 1)


def test_a_reader_whose_segments_were_merged_away_follows_the_new_manifest(tmp_path: Path) -> None:
    writer = SegmentedBM25.build(tmp_path / "bm25", [("a", "ssh port")])
    reader = SegmentedBM25.open(tmp_path / "bm25")  # manifest read, segments not mapped yet
    assert reader is not None
    writer.apply(adds=[("b", "ssh keys")])  # 1 + 1 pages: merged into a new segment, the old one removed
    assert reader.search("ssh", 5) == SegmentedBM25.build(
        None, [("a", "ssh port"), ("b", "ssh keys")]
    ).search("ssh", 5)


class _IndexMachine(RuleBasedStateMachine):
    """Random adds, upserts, deletes and reopens against a dict of the pages that should be there."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="bm25-sm-")) / "bm25"
        self.index = SegmentedBM25.create(self.folder)
        self.model: dict[str, str] = {}

    @rule(
        ids=st.lists(st.integers(0, 40), min_size=1, max_size=8),
        seed=st.integers(0, 10_000),
    )
    def add(self, ids: list[int], seed: int) -> None:
        rng = random.Random(seed)
        adds = [(f"id{i}", _text(rng)) for i in ids]
        self.index.apply(adds=adds)
        self.model.update(adds)

    @rule(ids=st.lists(st.integers(0, 40), max_size=6))
    def delete(self, ids: list[int]) -> None:
        doomed = [f"id{i}" for i in ids]
        self.index.apply(deletes=doomed)
        for d in doomed:
            self.model.pop(d, None)

    @rule()
    def reopen(self) -> None:
        again = SegmentedBM25.open(self.folder)
        assert again is not None
        self.index = again

    @invariant()
    def equals_scratch(self) -> None:
        _same(self.index, SegmentedBM25.build(None, self.model.items()))


def test_state_machine_index_equals_a_fresh_build() -> None:
    run_state_machine_as_test(
        _IndexMachine,
        settings=settings(
            max_examples=int(os.environ.get("PAGESIGHT_STATEFUL_EXAMPLES", "8")),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# -- in a store ---------------------------------------------------------------------------------------


def test_store_index_follows_adds_replacements_deletes_and_reopen(open_store, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # a server store's local cache
    rng = random.Random(3)
    store = open_store()
    for n in range(6):
        _add(store, _pages(f"doc{n}.pdf", [_text(rng) for _ in range(4)]))
    _same(store.bm25_index(), _scratch(store))
    _add(store, _pages("doc1.pdf", [_text(rng) for _ in range(3)], version="v2"))  # a new version
    store.delete_source("doc4.pdf")
    store.delete([store.ids()[0]])
    _same(store.bm25_index(), _scratch(store))
    generation = store.bm25_index().generation
    store.close()

    again = open_store()
    index = again.bm25_index()
    assert index.generation == generation  # loaded as saved, not rebuilt
    _same(index, _scratch(again))


def test_old_store_without_an_index_gets_one_on_first_search(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "store")
    _add(store, _pages("a.pdf", ["ssh port forwarding", "compost heap"]))
    store.close()
    import shutil

    shutil.rmtree(tmp_path / "store" / "bm25")  # as a store written before BM25 was saved
    with PageStore(tmp_path / "store") as again:
        assert again.bm25_index().search("ssh", 3)[0][0] == _pages("a.pdf", ["", ""])[0].id
        assert (tmp_path / "store" / "bm25" / MANIFEST).is_file()
        _add(again, _pages("b.pdf", ["ssh keys"]))
        _same(again.bm25_index(), _scratch(again))


def test_searcher_in_bm25_mode_uses_the_saved_index(tmp_path: Path) -> None:
    from pagesight.retrieval.search import PageSearcher

    with PageStore(tmp_path / "store") as store:
        _add(store, _pages("a.pdf", ["reading fixed-width files with read.fwf", "ssh port forwarding"]))
        searcher = PageSearcher(store, None, mode="bm25")
        assert [h.page for h in searcher.search("fwf", k=2)] == [1]
        _add(store, _pages("b.pdf", ["more about read.fwf and fwf widths"]))
        assert [h.source for h in searcher.search("fwf", k=2)] == ["b.pdf", "a.pdf"]  # no refresh() needed


_WRITER = textwrap.dedent(
    """
    import hashlib, sys, time
    import numpy as np
    from pagesight.documents.page import Page
    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.store import PageStore
    info = EmbedderInfo(model="bm25-test/toy", revision=None, dimensions=4, kind="dense-text")
    with PageStore(sys.argv[1]) as store:
        for n in range(int(sys.argv[2])):
            digest = hashlib.sha256(f"s{n}".encode()).hexdigest()
            pages = [Page(f"s{n:02d}.pdf", i, f"shared words topic{n} page {i}", None, 0, 0, digest)
                     for i in range(1, 4)]
            store.add_source(pages, np.ones((3, 4), dtype=np.float32), embedder=info)
            print(n, flush=True)
            time.sleep(0.05)
    """
)


def test_second_process_searches_while_the_first_adds(tmp_path: Path) -> None:
    sources = 12
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path / "store"), str(sources)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first source is written: the store exists
    seen: list[int] = []
    reader = PageStore(tmp_path / "store")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = len(reader.bm25_index().search("shared", 1000))
            seen.append(found)
            if found == sources * 3:
                break
            time.sleep(0.01)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        assert all(n % 3 == 0 for n in seen)  # a source is all there or not there
        assert seen == sorted(seen)  # a snapshot never goes back
        assert seen[-1] == sources * 3
        assert len(set(seen)) > 2  # the reader saw the index grow while the writer wrote
        _same(reader.bm25_index(), _scratch(reader))
    finally:
        reader.close()
        if proc.poll() is None:
            proc.kill()


# -- crashes --------------------------------------------------------------------------------------------

_CRASHER = textwrap.dedent(
    """
    import functools, hashlib, importlib, os, signal, sys
    import numpy as np
    from pagesight.documents.page import Page
    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.store import PageStore
    target, when, texts, version = sys.argv[2], sys.argv[3], sys.argv[4].split("|"), sys.argv[5]
    module, _, attr = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = attr.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    info = EmbedderInfo(model="bm25-test/toy", revision=None, dimensions=4, kind="dense-text")
    store = PageStore(sys.argv[1])
    digest = hashlib.sha256(f"a.pdf|{version}".encode()).hexdigest()
    pages = [Page("a.pdf", i, t, None, 0, 0, digest) for i, t in enumerate(texts, start=1)]
    setattr(owner, name, wrapper)
    store.add_source(pages, np.ones((len(pages), 4), dtype=np.float32), embedder=info)
    """
)

_CHROMA_UPSERT = "chromadb.api.models.Collection:Collection.upsert"


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize(
    ("target", "when", "version"),
    [
        (_CHROMA_UPSERT, "after", "v1"),  # records written, BM25 not: the same bytes again, new text (OCR)
        (_CHROMA_UPSERT, "after", "v2"),  # a new version's records written, the old one not yet deleted
        ("pagesight.retrieval.bm25:_write_segment", "after", "v2"),  # a segment written, no manifest
        ("pagesight.retrieval.bm25:_write_json", "before", "v2"),  # the manifest replace never happened
    ],
    ids=["same-ids-new-text", "new-version", "segment-no-manifest", "before-manifest"],
)
def test_a_killed_add_never_leaves_bm25_disagreeing_with_the_pages(tmp_path, target, when, version) -> None:
    with PageStore(tmp_path / "store") as store:
        _add(store, _pages("a.pdf", ["ssh port forwarding", "compost heap"]))
        _add(store, _pages("b.pdf", ["kernel module driver"]))
    texts = "usb stick mount|tomato seedling|csv column parser"
    run = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(tmp_path / "store"), target, when, texts, version],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    with PageStore(tmp_path / "store") as store:
        index = store.bm25_index()  # recovery, then a rebuild where the saved index cannot be trusted
        _same(index, _scratch(store))
        assert not (tmp_path / "store" / "bm25" / PENDING).exists()
        leftovers = [p.name for p in (tmp_path / "store" / "bm25").iterdir() if p.name.startswith(".tmp")]
        _add(store, _pages("c.pdf", ["ssh keys"]))
        _same(store.bm25_index(), _scratch(store))
        assert leftovers == [] or not any(
            p.name in leftovers for p in (tmp_path / "store" / "bm25").iterdir()
        )  # half-written segments go at the next write


def test_an_unreadable_manifest_is_rebuilt(tmp_path: Path) -> None:
    with PageStore(tmp_path / "store") as store:
        _add(store, _pages("a.pdf", ["ssh port forwarding", "compost heap"]))
    (tmp_path / "store" / "bm25" / MANIFEST).write_text('{"format": 1, "pag')  # a torn write
    with PageStore(tmp_path / "store") as store:
        _same(store.bm25_index(), _scratch(store))
        json.loads((tmp_path / "store" / "bm25" / MANIFEST).read_text())  # whole again


# -- server stores -------------------------------------------------------------------------------------


@pytest.mark.enable_socket
def test_server_store_cache_follows_this_machine_and_rebuilds_after_another(
    chroma_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    collection = f"bm25-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "here"))
    writer = PageStore(url=chroma_server, collection=collection)
    reader = PageStore(url=chroma_server, collection=collection)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))  # another machine's cache
    other = PageStore(url=chroma_server, collection=collection)
    try:
        _add(writer, _pages("a.pdf", ["ssh port forwarding", "compost heap"]))
        cache = tmp_path / "here" / "pagesight" / "bm25"
        (manifest,) = cache.rglob(MANIFEST)
        first = reader.bm25_index()
        assert first.info["stamp"] == writer.backend.read_metadata()[STAMP_KEY]
        _add(writer, _pages("b.pdf", ["ssh keys"]))
        second = reader.bm25_index()  # the writer's cache is current: reloaded, not rebuilt
        assert second.generation == first.generation + 1
        _same(second, _scratch(reader))
        _add(other, _pages("c.pdf", ["ssh agent"]))  # written from "elsewhere": this cache is stale
        third = reader.bm25_index()
        assert "c.pdf" in {h.source for h in reader.get([i for i, _ in third.search("agent", 5)])}
        _same(third, _scratch(reader))
        assert manifest.is_file()
    finally:
        for s in (writer, reader, other):
            s.close()

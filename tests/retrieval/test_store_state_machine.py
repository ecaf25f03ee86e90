"""A Hypothesis state machine drives a real PageStore and checks it against a dict model (issue 6).

Rules: add a source (new, a new version that replaces the old one, or the same version again with
new vectors), delete a source, delete single pages, close and reopen, reopen in a *subprocess* that
lists the records and checks their image files, and search (the nearest neighbour of a stored vector
is that page). After every step the invariants compare ids, sources, page counts and content
hashes with the model, and check that every record's image file exists and that no stray image
file is left in the image folder.

Example counts: ``PAGESIGHT_STATEFUL_EXAMPLES`` (default 8 examples of up to 30 steps, under
15 s) for the default run; the ``stateful_long`` test runs 200 examples of up to 50 steps and is
skipped unless ``PAGESIGHT_STATEFUL_LONG=1``::

    PAGESIGHT_STATEFUL_LONG=1 pytest -m stateful_long tests/retrieval/test_store_state_machine.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pagesight.documents.page import Page
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import PageStore

DIMS = 8
INFO = EmbedderInfo(model="state-machine/random-unit", revision=None, dimensions=DIMS, kind="dense-text")
SOURCES = ["alpha.pdf", "beta.pdf", "gamma.png", "https://example.org/delta.pdf"]
SUBPROCESS_EVERY = 8  # steps between two subprocess reopens

# Lists ids and image files of the store at argv[1] in a fresh interpreter; prints JSON.
_LISTER = """
import json, sys
from pathlib import Path
from pagesight.retrieval.store import PageStore
with PageStore(sys.argv[1]) as store:
    hits = store.pages()
    out = {
        "ids": sorted(h.id for h in hits),
        "sources": {s.source: [s.pages, s.content_hash] for s in store.sources()},
        "missing_images": [h.id for h in hits if h.image is not None and not Path(h.image).is_file()],
        "count": store.count(),
    }
print(json.dumps(out))
"""

STATS = {"examples": 0, "steps": 0, "adds": 0, "deletes": 0, "searches": 0, "reopens": 0, "subprocess": 0}


@dataclass
class ModelSource:
    """What the store must hold for one source."""

    content_hash: str
    vectors: dict[int, np.ndarray] = field(default_factory=dict)  # page number -> unit vector
    with_image: dict[int, bool] = field(default_factory=dict)

    def ids(self) -> set[str]:
        return {f"{self.content_hash[:32]}-p{n}" for n in self.vectors}


class StoreMachine(RuleBasedStateMachine):
    """Real PageStore in a temporary folder vs a dict of :class:`ModelSource`."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="pagesight-sm-"))
        self.path = self.root / "store"
        self.staging = self.root / "staging"
        self.staging.mkdir()
        self.store = PageStore(self.path)
        self.model: dict[str, ModelSource] = {}
        self.versions = 0  # every version of every source gets a distinct content hash
        self.since_subprocess = 0
        STATS["examples"] += 1

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _pages(self, source: str, entry: ModelSource) -> tuple[list[Page], np.ndarray]:
        pages, vectors = [], []
        for number in sorted(entry.vectors):
            image = None
            if entry.with_image[number]:
                image = self.staging / f"{entry.content_hash[:12]}-{number}-{self.versions}.png"
                image.write_bytes(b"\x89PNG fake page " + f"{source} {number}".encode())
            pages.append(
                Page(
                    source=source,
                    page=number,
                    text=f"{source} page {number}",
                    image=image,
                    width=10 if image else 0,
                    height=10 if image else 0,
                    content_hash=entry.content_hash,
                )
            )
            vectors.append(entry.vectors[number])
        return pages, np.stack(vectors)

    @staticmethod
    def _unit_vectors(seed: int, n: int) -> list[np.ndarray]:
        v = np.random.default_rng(seed).normal(size=(n, DIMS))
        return list(v / np.linalg.norm(v, axis=1, keepdims=True))

    def _reopen(self) -> None:
        self.store.close()
        self.store = PageStore(self.path)
        STATS["reopens"] += 1

    def _step(self) -> None:
        STATS["steps"] += 1
        self.since_subprocess += 1

    # -- rules ----------------------------------------------------------------------------------

    @rule(
        source=st.sampled_from(SOURCES),
        n_pages=st.integers(1, 5),
        images=st.lists(st.booleans(), min_size=5, max_size=5),
        seed=st.integers(0, 2**32 - 1),
    )
    def add_new_version(self, source: str, n_pages: int, images: list[bool], seed: int) -> None:
        """Index a source, replacing any older version of it (other content hash)."""
        self.versions += 1
        digest = hashlib.sha256(f"{source}#{self.versions}".encode()).hexdigest()
        entry = ModelSource(digest)
        for n, vec in enumerate(self._unit_vectors(seed, n_pages), start=1):
            entry.vectors[n] = vec
            entry.with_image[n] = images[n - 1]
        pages, vectors = self._pages(source, entry)
        self.store.add_source(pages, vectors, embedder=INFO)
        self.model[source] = entry
        assert all(p.image is None or not p.image.exists() for p in pages), "staging images must be removed"
        STATS["adds"] += 1
        self._step()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), seed=st.integers(0, 2**32 - 1))
    def upsert_same_version(self, data: st.DataObject, seed: int) -> None:
        """Index the same bytes again with new vectors: records are updated in place."""
        source = data.draw(st.sampled_from(sorted(self.model)))
        entry = self.model[source]
        for n, vec in zip(sorted(entry.vectors), self._unit_vectors(seed, len(entry.vectors)), strict=True):
            entry.vectors[n] = vec
        pages, vectors = self._pages(source, entry)
        self.store.add_source(pages, vectors, embedder=INFO)
        STATS["adds"] += 1
        self._step()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_source(self, data: st.DataObject) -> None:
        source = data.draw(st.sampled_from(sorted(self.model)))
        removed = self.store.delete_source(source)
        assert removed == len(self.model.pop(source).vectors)
        STATS["deletes"] += 1
        self._step()

    @rule(source=st.sampled_from(SOURCES))
    def delete_unknown_or_known_source(self, source: str) -> None:
        expected = len(self.model[source].vectors) if source in self.model else 0
        assert self.store.delete_source(source) == expected
        self.model.pop(source, None)
        STATS["deletes"] += 1
        self._step()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def delete_one_page(self, data: st.DataObject) -> None:
        source = data.draw(st.sampled_from(sorted(self.model)))
        entry = self.model[source]
        number = data.draw(st.sampled_from(sorted(entry.vectors)))
        assert self.store.delete([f"{entry.content_hash[:32]}-p{number}", "no-such-id-p1"]) == 1
        del entry.vectors[number], entry.with_image[number]
        if not entry.vectors:
            del self.model[source]
        STATS["deletes"] += 1
        self._step()

    @rule()
    def reopen(self) -> None:
        self._reopen()
        self._step()

    @precondition(lambda self: self.since_subprocess >= SUBPROCESS_EVERY)
    @rule()
    def reopen_in_subprocess(self) -> None:
        """Another interpreter opens the folder and must see exactly the model, images included."""
        self.store.close()
        done = subprocess.run(
            [sys.executable, "-c", _LISTER, str(self.path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        expected_ids = sorted(i for e in self.model.values() for i in e.ids())
        assert seen["ids"] == expected_ids
        assert seen["count"] == len(expected_ids)
        assert seen["missing_images"] == []
        assert seen["sources"] == {s: [len(e.vectors), e.content_hash] for s, e in self.model.items()}
        self.store = PageStore(self.path)
        self.since_subprocess = 0
        STATS["subprocess"] += 1
        self._step()

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data(), noise=st.floats(0.0, 0.05))
    def search_finds_the_page(self, data: st.DataObject, noise: float) -> None:
        source = data.draw(st.sampled_from(sorted(self.model)))
        entry = self.model[source]
        number = data.draw(st.sampled_from(sorted(entry.vectors)))
        query = entry.vectors[number] + noise / np.sqrt(DIMS)  # a nudge, far below the gap to others
        hits = self.store.search(query, k=3, embedder=INFO)
        assert hits and hits[0].id == f"{entry.content_hash[:32]}-p{number}", (hits, source, number)
        assert (hits[0].source, hits[0].page) == (source, number)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        scoped = self.store.search(query, k=50, embedder=INFO, source=source)
        assert {h.id for h in scoped} == entry.ids()
        STATS["searches"] += 1
        self._step()

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def records_match_the_model(self) -> None:
        expected = sorted(i for e in self.model.values() for i in e.ids())
        assert self.store.ids() == expected
        assert self.store.count() == len(expected)
        got = {s.source: (s.pages, s.content_hash) for s in self.store.sources()}
        assert got == {s: (len(e.vectors), e.content_hash) for s, e in self.model.items()}

    @invariant()
    def images_match_the_records(self) -> None:
        wanted: set[Path] = set()
        for hit in self.store.pages():
            entry = self.model[hit.source]
            if entry.with_image[hit.page]:
                assert hit.image is not None and hit.image.is_file(), hit
                assert hit.image.read_bytes().endswith(f"{hit.source} {hit.page}".encode())
                wanted.add(hit.image.resolve())
            else:
                assert hit.image is None and (hit.width, hit.height) == (0, 0)
        image_dir = self.store.image_dir
        on_disk = {p.resolve() for p in image_dir.rglob("*") if p.is_file()} if image_dir.exists() else set()
        assert on_disk == wanted, f"stray: {on_disk - wanted}, missing: {wanted - on_disk}"
        assert not [p for p in self.staging.iterdir()], "staging images left behind after a write"


def _run(max_examples: int, steps: int) -> None:
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            derandomize=False,
        ),
    )


def test_store_state_machine() -> None:
    """Default run: 8 examples, each up to 30 steps, with at least one subprocess reopen."""
    before = dict(STATS)
    _run(int(os.environ.get("PAGESIGHT_STATEFUL_EXAMPLES", "8")), 30)
    ran = {k: STATS[k] - before[k] for k in STATS}
    print(f"state machine: {ran}")
    assert ran["steps"] >= 10 and ran["examples"] >= 1


@pytest.mark.stateful_long
@pytest.mark.skipif(
    os.environ.get("PAGESIGHT_STATEFUL_LONG") != "1", reason="set PAGESIGHT_STATEFUL_LONG=1 for the long run"
)
def test_store_state_machine_long() -> None:
    """Long run: 200 examples of up to 50 steps (several minutes)."""
    before = dict(STATS)
    _run(200, 50)
    ran = {k: STATS[k] - before[k] for k in STATS}
    print(f"state machine (long): {ran}")
    assert ran["steps"] >= 1000

"""SIGKILL an ingest or a delete at many points; the store must come back whole.

A fork server (``crash_worker.py``) loads MiniLM once; every run is a forked child that writes a
real store (dense MiniLM into a PageStore, ``minilm-tokens`` into a MultiVectorStore, two records
per Chroma call so a source takes several). Children are killed either at the n-th call of an
internal function (page rendering, embedding, journal writes, image placement and removal, Chroma
upsert/delete, token rows, token index transactions, token-store compaction) or after a seeded
random delay. After each kill a fresh child reopens
the store and reports its content; then it re-runs the same operation and the result must equal an
uninterrupted run's, record for record (ids, text, metadata, vectors, image bytes, tokens).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.conftest import write_pdf

pytestmark = pytest.mark.skipif(os.name != "posix", reason="fork and SIGKILL are POSIX")

_WORKER = Path(__file__).with_name("crash_worker.py")
_READY_TIMEOUT_S = 120

_STORE = "pagesight.retrieval.store.pages"
_JOURNAL = "pagesight.retrieval.store._journal"
_CHROMA = "chromadb.api.models.Collection:Collection"
_TOKENS = "pagesight.retrieval.store.tokens:TokenStore"
_RENDER = "pagesight.documents.pdf:_MuPDF.render_png"
_CENT = "pagesight.retrieval.store.centroids:CentroidIndex"

# (op, kind) -> deterministic kill points: (target, n-th call, before/after)
_POINTS: dict[tuple[str, str], list[tuple[str, int, str]]] = {
    ("fresh", "dense"): [
        (_RENDER, 2, "after"),  # rendering (in the prefetch thread), nothing written yet
        ("pagesight.models.matryoshka:MatryoshkaEncoder.encode_documents", 1, "after"),  # embedding
        (f"{_JOURNAL}:record", 1, "after"),
        (f"{_STORE}:place_image", 2, "after"),
        (f"{_CHROMA}.upsert", 1, "after"),  # first of two batches of a source written
        (f"{_CHROMA}.upsert", 4, "before"),
        (f"{_STORE}:place_image", 5, "before"),
    ],
    ("fresh", "multi"): [
        (_RENDER, 3, "before"),
        ("pagesight.models.colembed:ColEmbedEncoder.encode_pages", 1, "after"),
        (f"{_TOKENS}._write_rows", 1, "after"),  # rows written, index not committed
        (f"{_TOKENS}._append", 2, "after"),  # tokens committed, Chroma not written
        (f"{_CHROMA}.upsert", 1, "after"),
        (f"{_JOURNAL}:finish", 2, "before"),
    ],
    ("update", "dense"): [
        (f"{_JOURNAL}:record", 2, "after"),  # new version written, old one not yet deleted
        (f"{_CHROMA}.delete", 1, "after"),  # old version half deleted
        (f"{_STORE}:remove_image", 1, "after"),
    ],
    ("update", "multi"): [
        (f"{_CHROMA}.upsert", 2, "after"),
        (f"{_CHROMA}.delete", 1, "before"),
        (f"{_TOKENS}.delete", 1, "before"),  # Chroma done, old tokens still indexed
    ],
    ("delete", "dense"): [
        (f"{_JOURNAL}:record", 1, "after"),
        (f"{_CHROMA}.delete", 1, "after"),
        (f"{_STORE}:remove_image", 2, "before"),
    ],
    ("compact", "multi"): [  # the second delete leaves most token rows dead: the store compacts
        (f"{_TOKENS}._write_rows", 1, "after"),  # live rows being copied to new segments
        (f"{_TOKENS}._unlink_segment", 1, "before"),  # index swapped, old segment files not yet gone
    ],
    ("delete", "multi"): [
        (f"{_CHROMA}.delete", 1, "after"),
        (f"{_TOKENS}.delete", 1, "before"),
    ],
    # a late-interaction store with token centroid candidates: the index is derived from the tokens,
    # and must be complete (every page coded, no stray file) once the store reopens
    ("fresh", "cent"): [
        (f"{_CENT}._write_arrays", 1, "after"),  # centroids written, not recorded
        (f"{_CENT}._write_arrays", 2, "after"),  # a segment's files written, not recorded
        (f"{_CENT}._switch", 1, "before"),  # pages coded in the new generation, not switched to
        (f"{_CENT}._record_segment", 2, "after"),  # the second source coded, its tokens' commit done
    ],
    ("update", "cent"): [
        (f"{_CENT}._remove_gone", 1, "after"),  # the replaced pages' entries dropped, not re-coded
        (f"{_CENT}._record_segment", 1, "before"),
    ],
    ("compact", "cent"): [  # deletes leave segments mostly gone: they are rewritten
        (f"{_CENT}._merge_segments", 1, "before"),
        (f"{_CENT}._merge_segments", 2, "before"),
        (f"{_CENT}._remove_unrecorded", 4, "before"),  # segments dropped, their files not yet gone
    ],
}
_RANDOM_KILLS_PER_CASE = 1
_SEED = 20261121


class Worker:
    """The fork server: one command at a time, each child killable by pid."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path.cwd()), env.get("PYTHONPATH", "")])
        self._log = open(tmp / "worker.log", "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self._tmp = tmp
        self._n = 0
        line = self._line(_READY_TIMEOUT_S)
        assert json.loads(line) == {"ready": True}, line

    def _line(self, timeout: float) -> str:
        import selectors

        assert self._proc.stdout is not None
        # A selector (epoll here), not select.select: select() refuses descriptors above 1024,
        # which a long test session can reach.
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        if not ready:
            raise AssertionError(f"crash worker silent for {timeout}s; see {self._tmp / 'worker.log'}")
        line = self._proc.stdout.readline()
        if not line:
            raise AssertionError(f"crash worker died; see {self._tmp / 'worker.log'}")
        return line

    def run(
        self,
        kind: str,
        store: Path,
        steps: list[list[Any]],
        *,
        kill: dict[str, Any] | None = None,
        kill_after_s: float | None = None,
        server: tuple[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None, float]:
        """Run steps in a child; return (exit code, its answer or None if killed, seconds).

        ``server``: (URL, collection) of a Chroma server store; ``store`` then holds its images.
        """
        self._n += 1
        out = self._tmp / f"answer-{self._n}.json"
        cmd = {"kind": kind, "store": str(store), "out": str(out), "steps": steps, "kill": kill}
        if server is not None:
            cmd["url"], cmd["collection"] = server
        assert self._proc.stdin is not None
        start = time.monotonic()
        self._proc.stdin.write(json.dumps(cmd) + "\n")
        self._proc.stdin.flush()
        pid = json.loads(self._line(30))["pid"]
        if kill_after_s is not None:
            time.sleep(kill_after_s)
            with contextlib.suppress(ProcessLookupError):  # it may have finished already
                os.kill(pid, signal.SIGKILL)
        code = json.loads(self._line(120))["exit"]
        elapsed = time.monotonic() - start
        answer = json.loads(out.read_text()) if out.exists() else None
        if answer is not None and not answer["ok"]:
            raise AssertionError(f"child failed: {answer['error']}\n{answer['trace']}")
        return code, answer, elapsed

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._log.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = Worker(tmp_path_factory.mktemp("crash-worker"))
    yield w
    w.close()


def _make_docs(folder: Path) -> tuple[list[str], list[str]]:
    """Three PDFs; returns (version 1 paths, their contents after a.pdf changes)."""
    folder.mkdir()
    a, b, c = folder / "a.pdf", folder / "b.pdf", folder / "c.pdf"
    write_pdf(a, ["Tomatoes need full sun.", "Compost improves the soil.", None])
    write_pdf(
        b, ["A firewall filters packets.", "Static IP addresses are set in a file.", "SSH uses port 22."]
    )
    write_pdf(c, ["Sourdough needs a starter.", None])
    return [str(a), str(b), str(c)], [str(a), str(b), str(c)]


def _versions(snap: dict[str, Any]) -> dict[tuple[str, str], set[int]]:
    """(source, content hash) -> the page numbers a snapshot holds of that version."""
    out: dict[tuple[str, str], set[int]] = {}
    for rec in snap["records"].values():
        out.setdefault((rec["source"], rec["hash"]), set()).add(rec["page"])
    return out


def _check_invariants(
    snap: dict[str, Any], kind: str, where: str, complete: dict[tuple[str, str], set[int]]
) -> None:
    assert snap["missing_images"] == [], f"{where}: records without their image: {snap['missing_images']}"
    assert snap["orphan_images"] == [], f"{where}: image files without a record: {snap['orphan_images']}"
    assert snap["leftovers"] == [], f"{where}: journal/staging leftovers after reopening: {snap['leftovers']}"
    if kind in ("multi", "cent"):
        assert snap["records_without_tokens"] == [], f"{where}: {snap['records_without_tokens']}"
        assert snap["tokens_without_record"] == [], f"{where}: {snap['tokens_without_record']}"
    if kind == "cent":
        cent = snap["centroids"]
        assert cent["coded"] == sorted(snap["records"]), f"{where}: centroid index codes {cent['coded']}"
        assert cent["stray_files"] == [], f"{where}: centroid files no record owns: {cent['stray_files']}"
        assert cent["search_exact"] in (True, None), f"{where}: probing every centroid is not exact"
    for (source, digest), pages in _versions(snap).items():  # a version is all there or not there
        assert pages == complete[source, digest], f"{where}: {source} holds only pages {sorted(pages)}"


def test_sigkill_at_many_points_loses_and_corrupts_nothing(worker: Worker, tmp_path: Path) -> None:
    docs, _ = _make_docs(tmp_path / "docs")
    a_path = docs[0]
    rng = random.Random(_SEED)
    bases: dict[str, Path] = {}
    complete: dict[tuple[str, str], set[int]] = {}  # every version's full page set
    for kind in ("dense", "multi", "cent"):
        base = tmp_path / f"base-{kind}"
        code, answer, _ = worker.run(kind, base, [["ingest", docs], ["snapshot"]])
        assert code == 0 and answer is not None
        complete.update(_versions(answer["answers"][-1]))
        bases[kind] = base
    # a.pdf changes after the bases hold its first version: "update" replaces it
    write_pdf(Path(a_path), ["Tomatoes need full sun and stakes.", "Compost needs turning.", None, "Mulch."])
    ops = {
        "fresh": (None, [["ingest", docs]]),
        "update": ("base", [["ingest", docs]]),
        "delete": ("base", [["delete", a_path]]),
        "compact": ("base", [["delete", a_path], ["delete", docs[1]]]),
    }
    kills, runs_finished, random_kills = 0, 0, 0
    for (op, kind), points in _POINTS.items():
        start_from, steps = ops[op]

        def fresh_copy(name: str, start_from: str | None = start_from, kind: str = kind) -> Path:
            dst = tmp_path / name
            if start_from is not None:
                shutil.copytree(bases[kind], dst)
            return dst

        ref_store = fresh_copy(f"ref-{op}-{kind}")
        code, answer, ref_s = worker.run(kind, ref_store, [*steps, ["snapshot"]])
        assert code == 0 and answer is not None
        reference = answer["answers"][-1]
        complete.update(_versions(reference))
        _check_invariants(reference, kind, f"reference {op}/{kind}", complete)
        assert reference["records"], "the reference run stored nothing"

        plans: list[tuple[dict[str, Any] | None, float | None]] = [
            ({"target": t, "n": n, "when": w}, None) for t, n, w in points
        ]
        plans += [(None, rng.uniform(0.1, max(0.2, ref_s))) for _ in range(_RANDOM_KILLS_PER_CASE)]
        for i, (hook, delay) in enumerate(plans):
            store = fresh_copy(f"kill-{op}-{kind}-{i}")
            what = f"{op}/{kind} killed at {hook or f'{delay:.2f}s'}"
            code, answer, _ = worker.run(kind, store, steps, kill=hook, kill_after_s=delay)
            if code == -signal.SIGKILL:
                kills += 1
                random_kills += hook is None
            else:
                assert hook is None, f"{what}: the kill point was never reached (exit {code})"
                runs_finished += 1
            code, answer, _ = worker.run(kind, store, [["snapshot"], *steps, ["snapshot"]])
            assert code == 0 and answer is not None
            after_kill, final = answer["answers"][0], answer["answers"][-1]
            _check_invariants(after_kill, kind, f"{what}, reopened", complete)
            _check_invariants(final, kind, f"{what}, re-run", complete)
            assert final["records"] == reference["records"], f"{what}: re-run differs from the reference"
    print(
        f"\ncrash safety: {kills} SIGKILLs ({random_kills} at random times), "
        f"{runs_finished} runs finished first"
    )
    assert kills >= 20


@pytest.mark.enable_socket
def test_a_server_store_killed_mid_write_is_completed_by_running_the_ingest_again(
    worker: Worker, tmp_path: Path, chroma_server: str
) -> None:
    # A server store has no journal (the server is shared): a kill can leave part of a source, or
    # an old version beside the new one. Every record still has its image (images go first), and
    # ingest must see the source as not indexed and write it again, never report it "unchanged".
    docs, _ = _make_docs(tmp_path / "docs")
    run_id = uuid.uuid4().hex[:8]

    def run(name: str, steps: list[list[Any]], kill: tuple[str, int, str] | None = None) -> Any:
        hook = None if kill is None else {"target": kill[0], "n": kill[1], "when": kill[2]}
        code, answer, _ = worker.run(
            "dense", tmp_path / name, steps, kill=hook, server=(chroma_server, f"crash-{name}-{run_id}")
        )
        assert code == (-signal.SIGKILL if kill else 0), f"{name}: exit {code}"
        return answer

    reference = run("reference", [["ingest", docs], ["snapshot"]])["answers"][-1]
    run("updated-reference", [["ingest", docs]])
    run("update", [["ingest", docs]])
    # a.pdf's first batch of two pages is on the server, its third page is not
    run("fresh", [["ingest", docs]], kill=(f"{_CHROMA}.upsert", 1, "after"))
    answers = run("fresh", [["snapshot"], ["ingest", docs], ["snapshot"]])["answers"]
    after_kill, statuses, final = answers
    assert len(after_kill["records"]) == 2 and after_kill["missing_images"] == []
    assert statuses == {docs[0]: "indexed", docs[1]: "indexed", docs[2]: "indexed"}
    assert final["records"] == reference["records"]
    assert final["missing_images"] == [] and final["orphan_images"] == []

    # An update killed after the new version is written, before the old one is deleted.
    write_pdf(Path(docs[0]), ["Tomatoes need full sun and stakes.", "Compost needs turning.", None, "Mulch."])
    updated = run("updated-reference", [["ingest", docs], ["snapshot"]])["answers"][-1]
    run("update", [["ingest", docs]], kill=(f"{_CHROMA}.delete", 1, "before"))
    answers = run("update", [["snapshot"], ["ingest", docs], ["snapshot"]])["answers"]
    after_kill, statuses, final = answers
    versions = {rec["hash"] for rec in after_kill["records"].values() if rec["source"] == docs[0]}
    assert len(versions) == 2 and after_kill["missing_images"] == []  # both versions of a.pdf
    assert statuses[docs[0]] == "indexed" and statuses[docs[1]] == "unchanged"
    assert final["records"] == updated["records"]
    assert final["missing_images"] == [] and final["orphan_images"] == []


def test_reopening_removes_staging_folders_of_dead_ingests_only(tmp_path: Path) -> None:
    import hashlib

    import numpy as np

    from pagesight.documents.page import Page
    from pagesight.models.base import EmbedderInfo
    from pagesight.retrieval.store import PageStore

    path = tmp_path / "store"
    digest = hashlib.sha256(b"x").hexdigest()
    with PageStore(path) as store:
        store.add_source(
            [Page("x.pdf", 1, "x", None, 0, 0, digest)],
            np.ones((1, 4)),
            embedder=EmbedderInfo("test/dense", None, 4, "dense-text"),
        )
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = path / f".staging-{int(gone.stdout)}-abc"
    alive = path / f".staging-{os.getpid()}-def"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "page-1.png").write_bytes(b"png")
    with PageStore(path) as store:
        assert store.count() == 1  # opening repairs
    assert not dead.exists(), "the staging folder of a dead ingest was left behind"
    assert (alive / "page-1.png").is_file(), "a live ingest's staging folder was removed"

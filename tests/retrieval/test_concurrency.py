"""Concurrency: searches while another thread or process ingests into the same store.

- 8 threads search (hybrid, real all-MiniLM-L6-v2) an embedded store while a 9th thread ingests
  generated PDFs into it: no search raises, every hit is a complete record (its page image file
  exists, its text is non-empty, it belongs to a document ingested so far), and afterwards the
  store holds exactly the expected pages. Once for a :class:`PageStore`, once for a
  :class:`MultiVectorStore` with ``minilm-tokens`` (token matrices must exist for every hit too).
- Two processes ingest different PDFs into one Chroma server (``chroma run``) with a shared image
  folder while each searches it: afterwards the server holds exactly both processes' pages.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import StoreError, StoreMismatchError
from pagesight.models.base import EmbedderInfo
from pagesight.pipelines.ingest import ingest
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import Hit, PageStore
from tests.pipelines.conftest import write_pdf

_TOPICS = [
    "Tomatoes need full sun and regular watering; stake the plants so the fruit stays off the soil.",
    "A firewall filters packets; nftables rules allow SSH on port 22 and drop other traffic.",
    "Sourdough bread rises slowly: feed the starter flour and water, then bake in a hot oven.",
    "Volcanoes erupt when magma pressure builds beneath the crust and lava flows down the slope.",
    "The violin has four strings tuned in fifths and is played with a horsehair bow.",
    "Penguins live in Antarctica, dive for krill and fish, and huddle together against the wind.",
    "Compound interest grows savings because each year's interest earns interest the next year.",
    "A marathon is 42 kilometres; runners train with long slow runs and taper before the race.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen in leaves.",
    "Chess openings control the centre; castle early to keep the king safe behind pawns.",
]
_QUERIES = [
    "how much sun do tomato plants need",
    "open ssh port in the firewall",
    "feeding a sourdough starter",
    "why do volcanoes erupt",
    "how is a violin tuned",
    "what do penguins eat",
    "interest on savings",
    "training for a marathon",
    "how do plants make sugar",
    "chess opening strategy",
]
_SEARCH_THREADS = 8
_PAGES_PER_DOC = 2


def _make_pdfs(folder: Path, topics: list[str], prefix: str) -> list[Path]:
    """One 2-page PDF per topic (page 2 repeats the topic with a page marker)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_pdf(folder / f"{prefix}-{i}.pdf", [topic, f"Page two of {prefix} {i}. {topic}"])
        for i, topic in enumerate(topics)
    ]


@pytest.fixture(scope="module")
def token_encoder() -> Any:
    """The real ``minilm-tokens`` late-interaction encoder."""
    from pagesight.models.colembed import ColEmbedEncoder

    enc = ColEmbedEncoder("minilm-tokens")
    enc.load()
    return enc


def _run_concurrently(
    store: PageStore | MultiVectorStore,
    encoder: Any,
    pdfs: list[Path],
    check_hit: Callable[[Hit], str | None],
) -> dict[str, Any]:
    """Seed ``store`` with ``pdfs[0]``, then ingest the rest in one thread while 8 threads search.

    Returns the searches served (in all and while the ingest thread ran), the hits checked and
    every problem seen (exceptions with tracebacks, incomplete hits, hits from documents not yet
    ingested).
    """
    seed = ingest([pdfs[0]], store, encoder, show_progress=False)
    assert seed.ok and seed.pages_indexed == _PAGES_PER_DOC, seed.summary()
    searcher = PageSearcher(store, encoder, mode="hybrid")
    problems: list[str] = []
    lock = threading.Lock()
    started: set[str] = {str(pdfs[0])}  # sources whose ingest has begun (hits may come from these)
    counts = {"searches": 0, "hits": 0, "during_ingest": 0}
    done = threading.Event()
    min_per_thread = 3

    def search_loop(worker: int) -> None:
        i, mine = worker, 0
        while not done.is_set() or mine < min_per_thread:
            query = _QUERIES[i % len(_QUERIES)]
            i += 1
            try:
                hits = searcher.search(query, k=5)
            except Exception:
                with lock:
                    problems.append(f"thread {worker}: search {query!r} raised\n{traceback.format_exc()}")
                return
            with lock:
                allowed = set(started)
            found = []
            for hit in hits:
                issue = check_hit(hit)
                if issue is None and hit.source not in allowed:
                    issue = "from a source whose ingest had not begun"
                if issue is not None:
                    found.append(f"thread {worker}: {query!r} -> {hit.source} p{hit.page}: {issue}")
            mine += 1
            with lock:
                counts["during_ingest"] += not done.is_set()
                counts["searches"] += 1
                counts["hits"] += len(hits)
                problems.extend(found)

    def ingest_loop() -> None:
        try:
            for pdf in pdfs[1:]:
                with lock:
                    started.add(str(pdf))
                report = ingest([pdf], store, encoder, show_progress=False)
                searcher.refresh()  # later BM25 lookups see the new pages
                if not report.ok or report.pages_indexed != _PAGES_PER_DOC:
                    with lock:
                        problems.append(f"ingest of {pdf}: {report.summary()}")
        except Exception:
            with lock:
                problems.append(f"ingest raised\n{traceback.format_exc()}")
        finally:
            done.set()

    threads = [
        threading.Thread(target=search_loop, args=(w,), name=f"search-{w}") for w in range(_SEARCH_THREADS)
    ]
    writer = threading.Thread(target=ingest_loop, name="ingest")
    t0 = time.monotonic()
    for t in threads:
        t.start()
    writer.start()
    writer.join(timeout=120)
    for t in threads:
        t.join(timeout=60)
    assert not writer.is_alive() and not any(t.is_alive() for t in threads), "a thread hung"
    return {**counts, "problems": problems, "seconds": time.monotonic() - t0}


def _assert_exact_pages(store: PageStore | MultiVectorStore, pdfs: list[Path]) -> list[Hit]:
    """The store holds exactly every page of ``pdfs``, each with its image file and text."""
    pages = store.pages()
    expected = {(str(p), n) for p in pdfs for n in range(1, _PAGES_PER_DOC + 1)}
    got = [(h.source, h.page) for h in pages]
    assert len(got) == len(set(got)), "duplicate records"
    assert set(got) == expected, f"missing {expected - set(got)}, unexpected {set(got) - expected}"
    assert store.count() == len(expected)
    for h in pages:
        assert h.image is not None and h.image.is_file(), f"{h.source} p{h.page} has no image file"
        assert h.text.strip(), f"{h.source} p{h.page} has no text"
    return pages


def _served(result: dict[str, Any]) -> str:
    return (
        f"{result['searches']} searches ({result['during_ingest']} during ingest), "
        f"{result['hits']} hits in {result['seconds']:.1f} s"
    )


def _complete_page(hit: Hit) -> str | None:
    if hit.image is None or not hit.image.is_file():
        return f"image file missing ({hit.image})"
    if not hit.text.strip():
        return "empty text"
    return None


def _assert_each_found(store: Any, encoder: Any, pdfs: list[Path]) -> None:
    """Nothing lost from the indexes either: each document is found first by its own question."""
    searcher = PageSearcher(store, encoder, mode="hybrid")
    for pdf, query in zip(pdfs, _QUERIES, strict=False):
        assert searcher.search(query, k=2)[0].source == str(pdf), query


def _assert_served(result: dict[str, Any]) -> None:
    """No search failed or saw an incomplete page, and the searches overlapped the writes."""
    assert result["problems"] == [], "\n".join(result["problems"][:5])
    assert result["searches"] >= _SEARCH_THREADS * 3
    assert result["during_ingest"] >= _SEARCH_THREADS, result
    assert result["hits"] > 0


def test_searches_while_ingesting_embedded_page_store(tmp_path: Path, encoder: Any) -> None:
    pdfs = _make_pdfs(tmp_path / "docs", _TOPICS, "doc")
    store = PageStore(tmp_path / "store")
    try:
        result = _run_concurrently(store, encoder, pdfs, _complete_page)
        _assert_served(result)
        _assert_exact_pages(store, pdfs)
        _assert_each_found(store, encoder, pdfs)
    finally:
        store.close()
    print(f"page store: {_served(result)}")


def test_searches_while_ingesting_multivector_store(tmp_path: Path, token_encoder: Any) -> None:
    pdfs = _make_pdfs(tmp_path / "docs", _TOPICS[:6], "doc")
    store = MultiVectorStore(tmp_path / "store")

    def complete(hit: Hit) -> str | None:
        issue = _complete_page(hit)
        if issue is None:
            tokens = store.get_tokens([hit.id])
            if len(tokens) != 1 or tokens[0].ndim != 2 or tokens[0].shape[0] == 0:
                issue = "token matrix missing"
        return issue

    try:
        result = _run_concurrently(store, token_encoder, pdfs, complete)
        _assert_served(result)
        pages = _assert_exact_pages(store, pdfs)
        tokens = store.get_tokens([h.id for h in pages])
        assert all(t.ndim == 2 and t.shape[0] > 0 for t in tokens)
        _assert_each_found(store, token_encoder, pdfs)
    finally:
        store.close()
    print(f"multi-vector store: {_served(result)}")


@pytest.fixture
def server_collection(chroma_server: str) -> Iterator[tuple[str, str]]:
    """A fresh collection name on the session's Chroma server."""
    yield chroma_server, f"conc-{uuid.uuid4().hex[:12]}"


@pytest.mark.enable_socket
def test_two_processes_ingest_and_search_one_server(
    tmp_path: Path, server_collection: tuple[str, str], encoder: Any
) -> None:
    url, collection = server_collection
    image_dir = tmp_path / "images"
    # Both workers start on an empty collection: each handle must see the embedder the other records.
    halves = {"a": _TOPICS[:5], "b": _TOPICS[5:]}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    outs: dict[str, Path] = {}
    pdfs: dict[str, list[Path]] = {}
    worker = Path(__file__).with_name("concurrent_worker.py")
    root = Path(__file__).resolve().parents[2]
    for name, topics in halves.items():
        pdfs[name] = _make_pdfs(tmp_path / f"docs-{name}", topics, name)
        outs[name] = tmp_path / f"out-{name}.json"
        spec = {
            "url": url,
            "image_dir": str(image_dir),
            "collection": collection,
            "pdfs": [str(p) for p in pdfs[name]],
            "queries": _QUERIES,
            "min_searches": 5,
            "out": str(outs[name]),
        }
        spec_path = tmp_path / f"spec-{name}.json"
        spec_path.write_text(json.dumps(spec))
        procs[name] = subprocess.Popen(
            [sys.executable, str(worker), str(spec_path)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    reports: dict[str, dict[str, Any]] = {}
    for name, proc in procs.items():
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"worker {name} did not finish in 120 s:\n{output.decode(errors='replace')[-3000:]}")
        assert proc.returncode == 0, (
            f"worker {name} exited {proc.returncode}:\n{output.decode(errors='replace')[-3000:]}"
        )
        reports[name] = json.loads(outs[name].read_text())
    for name, report in reports.items():
        assert report["problems"] == [], f"worker {name}:\n" + "\n".join(report["problems"][:5])
        assert report["indexed"] == [str(p) for p in pdfs[name]]
        assert report["searches"] >= 5
        assert report["during_ingest"] >= 1, report  # this worker searched while it was writing
    store = PageStore(url=url, image_dir=image_dir, collection=collection)
    try:
        _assert_exact_pages(store, [*pdfs["a"], *pdfs["b"]])
        _assert_each_found(store, encoder, [*pdfs["a"], *pdfs["b"]])
    finally:
        store.close()
    print(
        "two processes: "
        + ", ".join(
            f"{n}: {r['searches']} searches ({r['during_ingest']} during ingest), {r['hits']} hits"
            for n, r in reports.items()
        )
    )


def test_handle_opened_before_another_handles_first_write_can_write(
    tmp_path: Path, make_pages: Callable[..., list[Page]]
) -> None:
    info = EmbedderInfo("concurrency-test", None, 4, "dense-text")
    first = PageStore(tmp_path / "store")
    second = PageStore(tmp_path / "store")
    try:
        assert first.count() == 0  # opens the collection while it is empty
        second.add_source(make_pages("b.pdf", 1), np.ones((1, 4), np.float32), embedder=info)
        first.add_source(make_pages("a.pdf", 1), np.ones((1, 4), np.float32), embedder=info)
        assert {h.source for h in first.pages()} == {"a.pdf", "b.pdf"}
    finally:
        first.close()
        second.close()


def test_handle_opened_while_empty_checks_the_embedder_another_handle_recorded(
    tmp_path: Path, make_pages: Callable[..., list[Page]]
) -> None:
    info = EmbedderInfo("concurrency-test", None, 4, "dense-text")
    other = EmbedderInfo("another-model", None, 4, "dense-text")
    first = PageStore(tmp_path / "store")
    second = PageStore(tmp_path / "store")
    try:
        assert first.count() == 0 and first.embedder is None
        second.add_source(make_pages("b.pdf", 1), np.ones((1, 4), np.float32), embedder=info)
        assert first.embedder == info
        with pytest.raises(StoreMismatchError, match="another-model"):
            first.search(np.ones(4, np.float32), k=1, embedder=other)
        assert [h.source for h in first.search(np.ones(4, np.float32), k=1, embedder=info)] == ["b.pdf"]
    finally:
        first.close()
        second.close()


# Writes 5-page sources into an embedded store (and deletes some) while the test reads it.
_BULK_WRITER = """
import hashlib, sys
import numpy as np
from pagesight.documents.page import Page
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.store import PageStore

path, n = sys.argv[1], int(sys.argv[2])
info = EmbedderInfo("bulk", None, 32, "dense-text")
rng = np.random.default_rng(0)
with PageStore(path) as store:
    for i in range(n):
        h = hashlib.sha256(f"doc{i}".encode()).hexdigest()
        pages = [Page(f"doc{i}.pdf", j, f"page {j} of doc {i}", None, 0, 0, h) for j in range(1, 6)]
        store.add_source(pages, rng.normal(size=(5, 32)), embedder=info)
        if i == 0:
            print("created", flush=True)  # the reader starts once the store exists
        if i % 20 == 19:
            store.delete_source(f"doc{i - 10}.pdf")
"""


def test_a_reader_process_searches_an_embedded_store_while_another_process_writes(tmp_path: Path) -> None:
    # Readers take no lock: a search from another process during the writes must neither fail nor
    # disturb them (the store's repair on open is left to the writer, which holds the lock).
    path, n = tmp_path / "store", 120
    info = EmbedderInfo("bulk", None, 32, "dense-text")
    writer = subprocess.Popen(
        [sys.executable, "-c", _BULK_WRITER, str(path), str(n)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    rng = np.random.default_rng(1)
    searches, refused, counts, problems = 0, 0, set(), []
    try:
        assert writer.stdout is not None
        first = writer.stdout.readline()  # two processes creating one Chroma folder at once would race
        assert first.strip() == b"created", first + writer.stdout.read()
        while writer.poll() is None or searches == 0:
            store = PageStore(path)
            try:
                for _ in range(10):
                    hits = store.search(rng.normal(size=32).astype(np.float32), k=5, embedder=info)
                    searches += 1
                    counts.add(store.count())
                    incomplete = [h for h in hits if not (h.source and h.text.startswith("page "))]
                    problems += [f"{h.id}: {h.source!r} p{h.page} {h.text!r}" for h in incomplete]
            except StoreError as e:
                # Chroma's embedded index can be caught mid-flush: a clear error naming the writer
                if f"while another process (pid {writer.pid}) is writing the store" in str(e):
                    refused += 1
                else:
                    problems.append(traceback.format_exc())
            except Exception:
                problems.append(traceback.format_exc())
            finally:
                store.close()
        output, _ = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert writer.returncode == 0, output.decode(errors="replace")[-3000:]
    assert problems == [], problems[:3]
    assert searches >= 20 and len(counts) >= 3, (searches, sorted(counts))  # it read during the writes
    with PageStore(path) as store:
        pages = store.pages()
        deleted = {f"doc{i - 10}.pdf" for i in range(19, n, 20)}
        assert {p.source for p in pages} == {f"doc{i}.pdf" for i in range(n)} - deleted
        assert len(pages) == 5 * (n - len(deleted))
        store.count()
        col = store.backend.collection()
        sample = col.get(ids=[p.id for p in pages[::25]], include=["embeddings"])
        for id_, vector in zip(sample["ids"], sample["embeddings"], strict=True):
            assert store.search(np.asarray(vector, np.float32), k=1, embedder=info)[0].id == id_
    print(
        f"reader process: {searches} searches during the other process's writes ({len(counts)} sizes "
        f"seen), {refused} refused with the writer named"
    )

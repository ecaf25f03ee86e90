"""Split long texts into overlapping windows and pool the windows' embeddings.

A text longer than the model's window is never cut: it is split into windows of whole words
(a word longer than a window is split by tokens), consecutive windows share about ``overlap``
tokens, each window is embedded, and the window vectors are pooled by :func:`pool_windows`.
Pure Python and numpy; the backends supply the token counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Span", "pack_windows", "spans_from_tokens", "spans_from_words", "estimate_tokens", "pool_windows"]


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a text: characters ``[start, end)`` holding ``tokens`` tokens."""

    start: int
    end: int
    tokens: int


def pack_windows(words: Sequence[Span], budget: int, overlap: int) -> list[Span]:
    """Group consecutive words into windows of at most ``budget`` tokens.

    Each window after the first starts with the last words of the previous one, at least
    ``overlap`` tokens of them when the words allow it (never so many that the window could not
    take a new word). Every word lands in at least one window, in order.

    Args:
        words: the text's words in order; each must hold at most ``budget`` tokens.
        budget: the most tokens a window may hold (>= 1).
        overlap: tokens shared by consecutive windows (0 <= overlap < budget).
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    windows: list[Span] = []
    n = len(words)
    i = 0
    while i < n:
        j, total = i, 0
        while j < n and total + words[j].tokens <= budget:
            total += words[j].tokens
            j += 1
        if j == i:  # a word over budget: the caller should have split it; take it alone
            total, j = words[i].tokens, i + 1
        windows.append(Span(words[i].start, words[j - 1].end, total))
        if j >= n:
            break
        k, shared = j, 0
        while k - 1 > i and shared < overlap:
            k -= 1
            shared += words[k].tokens
        while k < j and shared + words[j].tokens > budget:
            shared -= words[k].tokens
            k += 1
        i = k
    return windows


def spans_from_tokens(
    offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None], budget: int
) -> list[Span]:
    """Group a tokenizer's tokens into words (one :class:`Span` per word).

    Args:
        offsets: each token's ``(start, end)`` character offsets (``return_offsets_mapping``).
        word_ids: each token's word index (``BatchEncoding.word_ids()``); ``None`` starts a new word.
        budget: a word of more tokens than this is split into pieces of ``budget`` tokens.
    """
    words: list[Span] = []
    start = 0
    n = len(offsets)
    for t in range(1, n + 1):
        if t == n or word_ids[t] is None or word_ids[t] != word_ids[t - 1]:
            for piece in range(start, t, budget):
                stop = min(piece + budget, t)
                words.append(Span(offsets[piece][0], offsets[stop - 1][1], stop - piece))
            start = t
    return words


_WORD = re.compile(r"\S+")


def estimate_tokens(word: str) -> int:
    """A deliberately high estimate of a word's subword-token count: ``1 + len(word) // 4``.

    English prose runs at about 1.3 WordPiece tokens per whitespace word; this gives 2 for a
    4-7 letter word, so windows sized with it stay under the real limit for prose. Dense strings
    (hashes, code) can exceed it; the Ollama backend halves its budget and retries if the server
    still finds a window too long.
    """
    return 1 + len(word) // 4


def spans_from_words(text: str, budget: int) -> list[Span]:
    """Split ``text`` on whitespace into words with estimated token counts (no tokenizer needed).

    A word estimated above ``budget`` tokens is cut into pieces of about ``budget`` tokens.
    """
    words: list[Span] = []
    for match in _WORD.finditer(text):
        tokens = estimate_tokens(match.group())
        if tokens <= budget:
            words.append(Span(match.start(), match.end(), tokens))
            continue
        step = max(1, (budget - 1) * 4)
        for piece in range(match.start(), match.end(), step):
            stop = min(piece + step, match.end())
            words.append(Span(piece, stop, estimate_tokens(text[piece:stop])))
    return words


def pool_windows(vectors: np.ndarray, weights: Sequence[int]) -> np.ndarray:
    """Token-count-weighted mean of window embeddings, in float64.

    The mean of the window vectors approximates the vector of the whole text (for a
    mean-pooling model it is exactly the mean over all tokens, up to context effects at the
    window edges). Weighting by token count keeps a short tail window from counting as much as a
    full one; max-pooling would let one window dominate.
    """
    w = np.asarray(weights, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != w.shape[0] or w.sum() <= 0:
        raise ValueError("pool_windows needs one positive weight per window vector")
    pooled: np.ndarray = (vectors.astype(np.float64) * w[:, None]).sum(axis=0) / w.sum()
    return pooled

"""Group a store's pages by their page vectors (k-means) and name each group by its distinctive terms.

Install ``pip install "pagesight[cluster]"`` (scikit-learn), then::

    from pagesight import Index

    for c in Index.open("store").cluster(4):
        print(c.label, c.terms, [(h.source, h.page) for h in c.pages[:3]])
    # 0 ('compost', 'soil', 'seedl', ...) [('garden.pdf', 3), ('garden.pdf', 1), ...]

How:

- **vectors**: each page's stored vector (one per page in a dense store; for late interaction the
  mean of the page's token vectors), L2-normalized, so k-means on them groups by cosine;
- **k-means**: :class:`sklearn.cluster.KMeans` (k-means++ starts, ``n_init=10``, a fixed seed), a
  maintained implementation, deterministic for a given seed;
- **names**: the BM25 index's statistics, no second pass over the texts: a term scores
  ``(pages of the group holding it / pages of the group) * ln(N / pages of the store holding it)``
  (the share of the group that uses it, weighted by how rare it is elsewhere), kept only when at
  least two of the group's pages hold it (one page for a one-page group). Terms are BM25's:
  casefolded and Snowball-stemmed (``seedl`` for seedlings);
- **order**: clusters by size (largest first); pages in a cluster by cosine to its centre (most
  typical first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pagesight._checks import check_int
from pagesight._deps import require
from pagesight.errors import ConfigurationError, EmptyStoreError

if TYPE_CHECKING:
    from pagesight.retrieval.bm25 import SegmentedBM25
    from pagesight.types import Hit

__all__ = ["Cluster", "cluster_pages", "kmeans", "name_groups"]


@dataclass(frozen=True, slots=True)
class Cluster:
    """One group of pages.

    Attributes:
        label: 0 for the largest group, 1 for the next, ...
        terms: its most distinctive terms, best first.
        pages: its pages, most typical (closest to the group's centre) first; ``score`` is the cosine.
    """

    label: int
    terms: tuple[str, ...]
    pages: tuple[Hit, ...]


def kmeans(vectors: np.ndarray, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (``0..n-1``, largest group 0) and each row's cosine to its group's centre.

    Raises:
        ConfigurationError: ``n`` is below 1 or above the number of rows.
        MissingDependencyError: scikit-learn is not installed.
    """
    check_int("n", n, least=1)
    rows = len(vectors)
    if n > rows:
        raise ConfigurationError(f"`n` must be at most the number of pages ({rows}), got {n}")
    require("sklearn", "cluster")  # scikit-learn
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    model = KMeans(n_clusters=n, n_init=10, random_state=seed)
    raw = model.fit_predict(x)
    sizes = np.bincount(raw, minlength=n)
    order = sorted(range(n), key=lambda c: (-sizes[c], c))  # largest first
    relabel = np.empty(n, dtype=np.int64)
    relabel[np.asarray(order)] = np.arange(n)
    centres = model.cluster_centers_ / np.maximum(
        np.linalg.norm(model.cluster_centers_, axis=1, keepdims=True), 1e-12
    )
    cosine = np.einsum("ij,ij->i", x, centres[raw])
    return relabel[raw], cosine


def name_groups(
    bm25: SegmentedBM25, groups: Sequence[Sequence[str]], *, top: int = 5
) -> list[tuple[str, ...]]:
    """The ``top`` distinctive terms of each group of page ids (see the module docstring)."""
    within, df, total = bm25.group_document_frequencies(groups)
    names: list[tuple[str, ...]] = []
    for ids, counts in zip(groups, within, strict=True):
        size = max(1, len(ids))
        least = 2 if size > 1 else 1
        scored = [
            ((c / size) * math.log(total / df[t]), t)
            for t, c in counts.items()
            if c >= least and df[t] < total  # a term on every page names nothing
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        names.append(tuple(t for _, t in scored[:top]))
    return names


def cluster_pages(store: Any, n: int, *, seed: int = 0, terms: int = 5) -> list[Cluster]:
    """Cluster every page of ``store`` into ``n`` groups (see the module docstring).

    Args:
        store: a :class:`~pagesight.retrieval.store.PageStore` or
            :class:`~pagesight.retrieval.store.MultiVectorStore`.
        n: how many groups (at least 1, at most the number of pages).
        seed: k-means' seed.
        terms: terms named per group.

    Raises:
        EmptyStoreError: the store holds no pages.
        ConfigurationError: ``n`` out of range.
    """
    check_int("terms", terms, least=0)
    ids, vectors = page_vectors(store)
    if not ids:
        raise EmptyStoreError(f"store {store.location} holds no pages to cluster")
    labels, cosine = kmeans(vectors, n, seed=seed)
    from dataclasses import replace

    hits = {h.id: h for h in store.get(ids)}
    groups: list[list[tuple[float, str]]] = [[] for _ in range(n)]
    for doc_id, label, cos in zip(ids, labels.tolist(), cosine.tolist(), strict=True):
        groups[label].append((cos, doc_id))
    for members in groups:
        members.sort(key=lambda m: (-m[0], m[1]))
    names = name_groups(store.bm25_index(), [[d for _, d in g] for g in groups], top=terms)
    return [
        Cluster(label, names[label], tuple(replace(hits[d], score=float(c)) for c, d in members if d in hits))
        for label, members in enumerate(groups)
    ]


def page_vectors(store: Any) -> tuple[list[str], np.ndarray]:
    """Every page's id and vector: the stored vector, or the mean of a late-interaction page's tokens."""
    if getattr(store, "multivector", False):
        ids = sorted(h.id for h in store.pages())
        rows: list[np.ndarray] = []
        for start in range(0, len(ids), 256):
            rows.extend(
                np.asarray(m, dtype=np.float32).mean(axis=0)
                for m in store.get_tokens(ids[start : start + 256])
            )
        return ids, np.asarray(rows, dtype=np.float32).reshape(len(ids), -1)
    return store.vectors()

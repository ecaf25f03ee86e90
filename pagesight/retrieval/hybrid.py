"""BM25 keyword search and its fusion with dense (embedding) search.

Dense embeddings miss exact identifiers (``/etc/shadow``, ``read.fwf``, an error code) and rare words;
BM25 misses paraphrases. Fusing the two lists beats either alone. This module holds the three pieces:

- :func:`tokenize`: NFKC + casefold, Unicode-aware words, CJK character bigrams, optional Snowball
  stemming (PyStemmer) and a small English + German stopword list.
- :class:`BM25Index`: a BM25 index (bm25s underneath) over page texts, saved to and loaded from a folder,
  with a fingerprint of its input so a caller can tell when it is stale.
- :func:`fuse`: weighted score fusion (default) or reciprocal rank fusion (RRF).

Install / use::

    pip install "pagesight[offline]"          # bm25s and PyStemmer

    from pagesight.retrieval.hybrid import BM25Index, fuse

    index = BM25Index.build(["a.pdf#1", "a.pdf#2"], ["Reading fixed-width files", "SSH port forwarding"])
    sparse = index.search("fixed width", k=10)         # [("a.pdf#1", 0.52)]
    dense = [("a.pdf#2", 0.41), ("a.pdf#1", 0.39)]      # (id, cosine) from the vector store
    fuse(dense, sparse, k=5)                            # [("a.pdf#1", 0.6), ("a.pdf#2", 0.4)]

Choice of fusion and of ``alpha``
---------------------------------
Measured with ``python bench/fusion.py`` on ``eval/`` (189 pages of four real PDFs shipped by Debian,
64 hand-written, paraphrased queries; dense = all-MiniLM-L6-v2 over each page's full text, split into
256-token windows sharing 64 tokens and mean-pooled as the pipeline does; the top 50 of each list are
fused)::

    run                     nDCG@5  Recall@5  Recall@10  MRR@10
    dense only              0.803   0.893     0.930      0.815
    BM25 only               0.873   0.940     0.969      0.874
    weighted alpha=0.2      0.894   0.956     0.984      0.895
    weighted alpha=0.3      0.906   0.971     0.984      0.900
    weighted alpha=0.4      0.911   0.971     0.984      0.909   <- default
    weighted alpha=0.5      0.903   0.971     0.992      0.900
    weighted alpha=0.6      0.889   0.956     0.984      0.887
    weighted alpha=0.7      0.856   0.940     0.969      0.851
    RRF (k=60)              0.880   0.964     0.984      0.879

Weighted fusion beats both single lists on every metric for alpha from 0.2 to 0.6, and matches or
beats RRF (which throws the score gaps away) on every metric from 0.3 to 0.5. ``alpha=0.4`` has the
best nDCG@5 and MRR@10, and stays best or tied-best on nDCG@5 when 20 or 100 candidates per list are
fused instead of 50 (0.902 and 0.910). Dividing each list by its maximum instead of min-max scaling
gave the same numbers within 0.01 (one query moving one rank changes MRR by about 0.008 here), so
the usual min-max was kept. The set is small and on the easy side (BM25 alone finds 97% of the
answers in its top 10), so read the gaps as direction, not size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pagesight._checks import check_choice, check_int, check_number
from pagesight._deps import require
from pagesight.errors import ConfigurationError, StoreError

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_STOPWORDS",
    "ENGLISH_STOPWORDS",
    "GERMAN_STOPWORDS",
    "BM25Index",
    "fuse",
    "tokenize",
]

logger = logging.getLogger(__name__)

DEFAULT_ALPHA = 0.4
"""Weight of the dense list in :func:`fuse` (``1 - alpha`` goes to BM25); see the module docstring."""

ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    """a an and are as at be been but by can could did do does doing for from had has have how i if in
    into is it its me my of on or our should so than that the their them then there these they this
    those to was we were what when where which while who whom why will with would you your""".split()  # noqa: SIM905
)
"""Function words of English questions ("how do I ... in the ..."). Short on purpose: BM25's IDF already
discounts common words; the list only removes the ones a question adds but a page never answers."""

GERMAN_STOPWORDS: frozenset[str] = frozenset(
    """aber als am auch auf aus bei bin bis da dann das dass dem den der des die dies diese dieser du
    ein eine einem einen einer eines er es für hat ich ihr im in ist ja kann mit nach nicht noch nur
    oder sich sie sind so und uns von vom war was wie wir wird wo zu zum zur""".split()  # noqa: SIM905
)
"""Function words of German. None of them is a content word in English ("die" and "was" excepted,
which are rare or already stopwords there), so both lists are on by default."""

DEFAULT_STOPWORDS: frozenset[str] = ENGLISH_STOPWORDS | GERMAN_STOPWORDS
"""The stopwords :func:`tokenize` removes unless told otherwise (English and German)."""

_INDEX_FORMAT = 1
_META_FILE = "pagesight_bm25.json"

# Han (CJK unified ideographs, extension A, compatibility, extensions B+), Hiragana, Katakana (with the
# prolonged sound mark and phonetic extensions), Hangul syllables and jamo. Halfwidth katakana become
# fullwidth under NFKC, so they need no range here.
_CJK = (
    "\u1100-\u11ff\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\U00020000-\U0003134f"
)
# A CJK run, or a run of letters/digits (any script, underscore excluded) that holds no CJK character.
_TOKEN_RE = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+)")


@lru_cache(maxsize=16)
def _stemmer(language: str) -> Callable[[list[str]], list[str]] | None:
    """Return PyStemmer's ``stemWords`` for ``language``, or ``None`` when PyStemmer is absent."""
    try:
        import Stemmer
    except ImportError:
        logger.warning("PyStemmer is not installed; BM25 runs without stemming (pip install PyStemmer)")
        return None
    try:
        stemmer = Stemmer.Stemmer(language)
    except KeyError as e:
        raise ConfigurationError(
            f"`stemmer_language` must be one of {sorted(Stemmer.algorithms())} or None, got {language!r}"
        ) from e
    words: Callable[[list[str]], list[str]] = stemmer.stemWords
    return words


def tokenize(
    text: str,
    *,
    stemmer_language: str | None = "english",
    stopwords: Collection[str] | None = DEFAULT_STOPWORDS,
) -> list[str]:
    """Split text into BM25 terms.

    Steps: Unicode NFKC normalization and casefolding (so "Straße" and "STRASSE" both give "strasse",
    and a decomposed "a" + combining diaeresis equals "ä"); words are maximal runs of letters and
    digits in any script (punctuation and ``_`` split them: ``read.fwf`` gives ``read``, ``fwf``);
    runs of Han, Hiragana, Katakana or Hangul characters, which carry no spaces between words, become
    overlapping character bigrams (a one-character run stays a unigram), the approach of Lucene's CJK
    analyzer; stopwords are dropped; the remaining words are stemmed with Snowball.

    Args:
        text: any text.
        stemmer_language: a Snowball language known to PyStemmer (``"english"``, ``"german"``, ...),
            or ``None`` for no stemming. Without PyStemmer installed there is no stemming (a warning
            is logged once).
        stopwords: words (casefolded) to drop before stemming; ``None`` or empty keeps every word.
            Defaults to a short English + German list (:data:`DEFAULT_STOPWORDS`).

    Returns:
        The terms in text order:
        ``tokenize("Mounting the USB sticks")`` -> ``["mount", "usb", "stick"]``.

    Raises:
        ConfigurationError: ``stemmer_language`` is not a language PyStemmer knows.
    """
    normalized = unicodedata.normalize("NFKC", text).casefold()
    stop = stopwords or ()
    stem = _stemmer(stemmer_language) if stemmer_language else None
    terms: list[str] = []
    words: list[str] = []  # words waiting to be stemmed in one batch, with their slots in ``terms``
    slots: list[int] = []
    for match in _TOKEN_RE.finditer(normalized):
        run = match.group("cjk")
        if run is not None:
            if len(run) == 1:
                terms.append(run)
            else:
                terms.extend(run[i : i + 2] for i in range(len(run) - 1))
            continue
        word = match.group("word")
        if word in stop:
            continue
        if stem is not None:
            slots.append(len(terms))
            words.append(word)
        terms.append(word)
    if stem is not None and words:
        for slot, stemmed in zip(slots, stem(words), strict=True):
            terms[slot] = stemmed
    return terms


def _fingerprint(ids: Sequence[str], texts: Sequence[str], options: dict[str, Any]) -> str:
    """SHA-256 over the ids, the texts and the tokenizer options (length-prefixed, so unambiguous)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(options, sort_keys=True).encode())
    for value in (*ids, *texts):
        data = value.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    digest.update(len(ids).to_bytes(8, "little"))
    return digest.hexdigest()


def _tokenize_options(stemmer_language: str | None, stopwords: Collection[str] | None) -> dict[str, Any]:
    return {"stemmer_language": stemmer_language, "stopwords": sorted(stopwords) if stopwords else []}


class BM25Index:
    """BM25 (Lucene variant, ``k1=1.5``, ``b=0.75``) over page texts, keyed by page id.

    Install / Instantiate / Use::

        pip install "pagesight[offline]"

        index = BM25Index.build(ids, texts)              # ids: "<file>#<page>" or store record ids
        index.search("ssh port forwarding", k=10)        # [(id, score), ...], best first, score > 0
        index.save(folder)                               # a folder of .npy/.json files
        again = BM25Index.load(folder)
        if again.fingerprint != BM25Index.fingerprint_of(ids, texts):
            again = BM25Index.build(ids, texts)          # the pages changed: rebuild

    The tokenizer options given to :meth:`build` are stored with the index and applied to queries.
    """

    def __init__(
        self,
        ids: Sequence[str],
        retriever: Any,
        *,
        fingerprint: str,
        stemmer_language: str | None,
        stopwords: Collection[str] | None,
    ) -> None:
        """Wrap a built bm25s retriever; use :meth:`build` or :meth:`load` rather than this."""
        self._ids = list(ids)
        self._retriever = retriever  # bm25s.BM25, or None when no page has a term
        self._stemmer_language = stemmer_language
        self._stopwords: frozenset[str] = frozenset(stopwords or ())
        self.fingerprint = fingerprint
        """SHA-256 of the ids, texts and tokenizer options this index was built from."""

    @staticmethod
    def fingerprint_of(
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        stemmer_language: str | None = "english",
        stopwords: Collection[str] | None = DEFAULT_STOPWORDS,
    ) -> str:
        """Fingerprint that :meth:`build` would record for these inputs (compare with :attr:`fingerprint`)."""
        return _fingerprint(ids, texts, _tokenize_options(stemmer_language, stopwords))

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        texts: Sequence[str],
        *,
        stemmer_language: str | None = "english",
        stopwords: Collection[str] | None = DEFAULT_STOPWORDS,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> BM25Index:
        """Index ``texts`` under ``ids``.

        Args:
            ids: one unique id per text.
            texts: the page texts (may be empty strings; such pages are never returned).
            stemmer_language: see :func:`tokenize`.
            stopwords: see :func:`tokenize`.
            k1: BM25 term-frequency saturation.
            b: BM25 length normalization.

        Raises:
            ConfigurationError: ``ids`` and ``texts`` differ in length, or an id repeats.
            MissingDependencyError: bm25s is not installed.
        """
        if len(ids) != len(texts):
            raise ConfigurationError(
                f"`ids` and `texts` must have the same length, got {len(ids)} and {len(texts)}"
            )
        seen: set[str] = set()
        for doc_id in ids:
            if doc_id in seen:
                raise ConfigurationError(f"`ids` must be unique; {doc_id!r} appears more than once")
            seen.add(doc_id)
        corpus = [tokenize(t, stemmer_language=stemmer_language, stopwords=stopwords) for t in texts]
        retriever = None
        if any(corpus):
            bm25s = require("bm25s", "offline")
            retriever = bm25s.BM25(k1=k1, b=b)
            retriever.index(corpus, show_progress=False)
        logger.debug("built BM25 index over %d pages", len(ids))
        fingerprint = _fingerprint(ids, texts, _tokenize_options(stemmer_language, stopwords))
        return cls(
            ids, retriever, fingerprint=fingerprint, stemmer_language=stemmer_language, stopwords=stopwords
        )

    def __len__(self) -> int:
        """Number of indexed pages (pages with no terms included)."""
        return len(self._ids)

    @property
    def ids(self) -> list[str]:
        """The indexed ids, in build order (a copy)."""
        return list(self._ids)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Return up to ``k`` ``(id, score)`` pairs with score > 0, best first (ties by id).

        An empty query, a query of stopwords only, or an empty index gives ``[]``.

        Raises:
            ConfigurationError: ``k`` is negative.
        """
        check_int("k", k, least=0)
        if k == 0 or self._retriever is None:
            return []
        terms = tokenize(query, stemmer_language=self._stemmer_language, stopwords=self._stopwords)
        vocab = self._retriever.vocab_dict
        terms = [t for t in terms if t in vocab and t != ""]
        if not terms:
            return []
        import numpy as np

        scores = np.asarray(self._retriever.get_scores(terms))
        rows = np.flatnonzero(scores > 0)
        if len(rows) > k:  # keep the k best and every tie of the k-th, then sort those only
            kth = scores[rows[np.argpartition(-scores[rows], k - 1)[:k]]].min()
            rows = rows[scores[rows] >= kth]
        hits = [(self._ids[i], float(scores[i])) for i in rows.tolist()]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the index into ``folder`` (created if needed; earlier index files are overwritten).

        The metadata file is written last, through a temporary file and a rename, so a crash leaves
        either the old index or a folder that :meth:`load` refuses, never a mix it would accept.
        """
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        (path / _META_FILE).unlink(missing_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(path), show_progress=False)
        meta = {
            "format": _INDEX_FORMAT,
            "ids": self._ids,
            "fingerprint": self.fingerprint,
            "stemmer_language": self._stemmer_language,
            "stopwords": sorted(self._stopwords),
            "empty": self._retriever is None,
        }
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".meta-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False)
            os.replace(tmp, path / _META_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> BM25Index:
        """Read an index written by :meth:`save`.

        Raises:
            StoreError: the folder holds no complete index, or one of another format version.
        """
        path = Path(folder)
        try:
            meta = json.loads((path / _META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise StoreError(f"{path}: no BM25 index here ({_META_FILE} is missing); rebuild it") from e
        except (OSError, ValueError) as e:
            raise StoreError(f"{path}: the BM25 index metadata is unreadable ({e}); rebuild it") from e
        if not isinstance(meta, dict) or meta.get("format") != _INDEX_FORMAT:
            raise StoreError(
                f"{path}: BM25 index format {meta.get('format')!r} is not {_INDEX_FORMAT}; rebuild it"
            )
        retriever = None
        if not meta["empty"]:
            bm25s = require("bm25s", "offline")
            try:
                retriever = bm25s.BM25.load(str(path), show_progress=False)
            except (OSError, ValueError) as e:
                raise StoreError(f"{path}: the BM25 index files are unreadable ({e}); rebuild it") from e
        return cls(
            meta["ids"],
            retriever,
            fingerprint=meta["fingerprint"],
            stemmer_language=meta["stemmer_language"],
            stopwords=meta["stopwords"],
        )


def _ordered(results: Sequence[tuple[str, float]], name: str) -> list[tuple[str, float]]:
    """Check scores are finite, keep each id's best score, sort best first (ties by id)."""
    best: dict[str, float] = {}
    for doc_id, score in results:
        score = float(score)
        if not math.isfinite(score):
            raise ConfigurationError(f"`{name}` holds a non-finite score {score} for {doc_id!r}")
        if doc_id not in best or score > best[doc_id]:
            best[doc_id] = score
    return sorted(best.items(), key=lambda h: (-h[1], h[0]))


def _min_max(results: list[tuple[str, float]]) -> dict[str, float]:
    """Scale scores to [0, 1]; a list whose scores are all equal maps to 1.0 (each is its list's best)."""
    if not results:
        return {}
    top, bottom = results[0][1], results[-1][1]
    span = top - bottom
    if span <= 0:
        return {doc_id: 1.0 for doc_id, _ in results}
    return {doc_id: (score - bottom) / span for doc_id, score in results}


def fuse(
    dense: Sequence[tuple[str, float]],
    sparse: Sequence[tuple[str, float]],
    *,
    method: Literal["weighted", "rrf"] = "weighted",
    alpha: float = DEFAULT_ALPHA,
    rrf_k: int = 60,
    k: int | None = None,
) -> list[tuple[str, float]]:
    """Merge a dense and a sparse (BM25) result list into one ranking.

    ``"weighted"``: each list's scores are min-max scaled to [0, 1] (best 1, worst 0; a list of equal
    scores gives 1 to each), then ``alpha * dense + (1 - alpha) * sparse``, an id missing from a list
    counting 0 there. ``"rrf"``: ``sum(1 / (rrf_k + rank))`` over the lists that hold the id, rank
    1-based in score order. Inputs need not be sorted; an id repeated in one list keeps its best score.
    Ties are broken by id, so the output is deterministic.

    Args:
        dense: ``(id, score)`` pairs from embedding search, higher is better.
        sparse: ``(id, score)`` pairs from :meth:`BM25Index.search`.
        method: ``"weighted"`` (default; it beat RRF on ``eval/``, see the module docstring) or ``"rrf"``.
        alpha: weight of the dense list in ``"weighted"``, between 0 and 1.
        rrf_k: the RRF constant (60 in the original paper), >= 0.
        k: keep the best ``k``; ``None`` keeps all.

    Returns:
        ``(id, fused score)`` pairs, best first: a permutation of the ids of both lists (cut at ``k``).

    Example::

        fuse([("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 3.0)], alpha=0.4)
        # dense -> a 1, b 0; sparse -> b 1, c 0; fused: a 0.4, b 0.6, c 0.0
        # [("b", 0.6), ("a", 0.4), ("c", 0.0)]

    Raises:
        ConfigurationError: an option is out of range or a score is NaN or infinite.
    """
    check_choice("method", method, ("weighted", "rrf"))
    check_number("alpha", alpha, least=0.0, most=1.0)
    check_number("rrf_k", rrf_k, least=0.0)
    check_int("k", k, least=0, optional=True)
    dense_sorted = _ordered(dense, "dense")
    sparse_sorted = _ordered(sparse, "sparse")
    fused: dict[str, float] = {}
    if method == "weighted":
        for weight, results in ((alpha, dense_sorted), (1.0 - alpha, sparse_sorted)):
            for doc_id, score in _min_max(results).items():
                fused[doc_id] = fused.get(doc_id, 0.0) + weight * score
    else:
        for results in (dense_sorted, sparse_sorted):
            for rank, (doc_id, _) in enumerate(results, start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (rrf_k + rank)
    ranked = sorted(fused.items(), key=lambda h: (-h[1], h[0]))
    return ranked if k is None else ranked[:k]

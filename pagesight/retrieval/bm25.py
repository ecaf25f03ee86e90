"""BM25 saved in the store folder and updated page by page: term-frequency segments, idf at query time.

:class:`~pagesight.retrieval.hybrid.BM25Index` (bm25s) bakes each term's idf into the scores it
stores. idf depends on how many pages hold the term, so one added page changes the stored score of
every page that shares a term with it, and the index can only be rebuilt, never updated: that
rebuild is what every ``search`` paid (2.1 s at 7,300 pages). :class:`SegmentedBM25` stores what
does not change when other pages come and go (each page's term frequencies and length) and
computes idf, the page count and the mean length when it answers a query, so:

- an add writes one new *segment* (the new pages' postings) and a delete writes a *tombstone* mask
  for the segments that hold the page; nothing else is rewritten;
- scores equal those of an index built from scratch over the same pages (same formula, same
  numbers: a test compares them), whatever the history of adds and deletes;
- segments are merged when they pile up (tiered: a segment is merged into the one before it while
  that one is at most twice its size, so there are O(log pages) segments and each page is rewritten
  O(log pages) times), and a merge drops the tombstoned pages.

Scoring is Lucene's BM25 (what bm25s computes, ``k1=1.5``, ``b=0.75``): for each query term,
``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and a page's score adds
``idf * tf / (tf + k1 * (1 - b + b * len / mean_len))``; a term repeated in the query counts again.
Top-k is :func:`numpy.argpartition` over the pages that hold a query term; ties are broken by id.

Layout of a folder (every file is written once under a fresh name, then made current by an atomic
replace of ``manifest.json``)::

    manifest.json          format, tokenizer options, page count, total length, segment list, generation
    seg-<hex>/             one segment: terms (sorted, UTF-8 blob + offsets), postings per term
                           (page, tf), page ids (sorted, blob + offsets), page lengths
    seg-<hex>/dead-<hex>.npy   tombstones: a 0/1 byte per page of the segment

A reader memory-maps the segments on the first query (opening reads only the manifest) and reloads
when the manifest's generation changes on disk (:meth:`SegmentedBM25.changed`). Writers must be
serialized by the caller (the store's write lock): :mod:`pagesight.retrieval.store.pages` does
that, and detects an index that disagrees with its pages (a write a crash cut short) and rebuilds it.

Use::

    from pagesight.retrieval.bm25 import SegmentedBM25

    index = SegmentedBM25.create("bm25/")                   # empty, saved
    index.apply(adds=[("a#1", "Reading fixed-width files"), ("a#2", "SSH port forwarding")])
    index.apply(deletes=["a#2"])
    SegmentedBM25.open("bm25/").search("fixed width", k=10)  # [("a#1", 0.29)]
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pagesight._checks import check_int
from pagesight.errors import StoreError
from pagesight.retrieval.hybrid import DEFAULT_STOPWORDS, _stemmer, tokenize

__all__ = ["MANIFEST", "SegmentedBM25", "tokenizer_options"]

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
_K1 = 1.5
_B = 0.75
_MERGE_RATIO = 2  # merge the newest segment into the one before while that one is at most this times larger


def tokenizer_options(stemmer_language: str | None = "english") -> dict[str, Any]:
    """What the index records of its tokenizer; an index recorded with other options is rebuilt.

    ``stemmed`` says whether PyStemmer was there: an index built without stemming must not be
    queried with it (and the other way round).
    """
    stop = sorted(DEFAULT_STOPWORDS)
    return {
        "stemmer_language": stemmer_language,
        "stemmed": bool(stemmer_language) and _stemmer(stemmer_language) is not None,
        "stopwords": hashlib.sha256("\n".join(stop).encode()).hexdigest()[:16],
        "k1": _K1,
        "b": _B,
    }


# -- strings in one blob ------------------------------------------------------------------------------


class _Strings(Sequence[str]):
    """A sorted list of strings stored as one UTF-8 blob and an offsets array (memory-mappable)."""

    def __init__(self, blob: Any, offsets: np.ndarray) -> None:
        self._blob = blob
        self._off = offsets

    def __len__(self) -> int:
        return len(self._off) - 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a, b = int(self._off[i]), int(self._off[i + 1])
        return bytes(self._blob[a:b]).decode("utf-8", "surrogatepass")

    def find(self, value: str) -> int:
        """Position of ``value``, or -1."""
        pos = bisect.bisect_left(self, value)
        return pos if pos < len(self) and self[pos] == value else -1

    def all(self) -> list[str]:
        data = bytes(self._blob[:]).decode("utf-8", "surrogatepass") if len(self._blob) else ""
        # offsets count bytes; decode piecewise only when some string is not ASCII
        if len(data) == int(self._off[-1]):
            off = self._off.tolist()
            return [data[off[i] : off[i + 1]] for i in range(len(off) - 1)]
        return [self[i] for i in range(len(self))]


def _pack(strings: Sequence[str]) -> tuple[bytes, np.ndarray]:
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return b"".join(encoded), offsets


# -- one segment ----------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """The pages of one segment: terms, postings, ids, lengths; ``dead`` marks deleted pages."""

    name: str
    terms: _Strings
    term_ptr: np.ndarray  # int64 (terms + 1): postings of term t are [term_ptr[t], term_ptr[t + 1])
    post_doc: np.ndarray  # int32: the page (index into ids) of each posting
    post_tf: np.ndarray  # int32: the term's count in that page
    ids: _Strings
    lengths: np.ndarray  # int32: terms per page
    dead: np.ndarray | None = None  # uint8 per page (1 = deleted), or None
    dead_file: str | None = None

    @property
    def size(self) -> int:
        return len(self.lengths)

    @property
    def live(self) -> int:
        return self.size - (int(self.dead.sum()) if self.dead is not None else 0)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Live (pages, tf) holding ``term``, or ``None``."""
        t = self.terms.find(term)
        if t < 0:
            return None
        lo, hi = int(self.term_ptr[t]), int(self.term_ptr[t + 1])
        docs, tf = self.post_doc[lo:hi], self.post_tf[lo:hi]
        if self.dead is not None:
            keep = self.dead[docs] == 0
            docs, tf = docs[keep], tf[keep]
        return (docs, tf) if len(docs) else None

    def locate(self, doc_id: str) -> int:
        """Index of a live page with this id, or -1."""
        i = self.ids.find(doc_id)
        if i >= 0 and self.dead is not None and self.dead[i]:
            return -1
        return i

    def live_rows(self) -> np.ndarray:
        if self.dead is None:
            return np.arange(self.size, dtype=np.int64)
        return np.flatnonzero(self.dead == 0)


@dataclass
class _Parts:
    """A segment before it is written: any vocabulary order, any page order."""

    ids: list[str]
    lengths: np.ndarray
    vocab: list[str]
    p_term: np.ndarray
    p_doc: np.ndarray
    p_tf: np.ndarray


def _parts_from_texts(docs: Sequence[tuple[str, str]], stemmer_language: str | None) -> _Parts:
    vocab: dict[str, int] = {}
    terms: list[int] = []
    pages: list[int] = []
    tfs: list[int] = []
    lengths = np.zeros(len(docs), dtype=np.int32)
    for row, (_, text) in enumerate(docs):
        words = tokenize(text, stemmer_language=stemmer_language)
        lengths[row] = len(words)
        counts = Counter(words)
        terms.extend([vocab.setdefault(word, len(vocab)) for word in counts])
        tfs.extend(counts.values())
        pages.extend([row] * len(counts))
    return _Parts(
        [d for d, _ in docs],
        lengths,
        list(vocab),
        np.asarray(terms, dtype=np.int64),
        np.asarray(pages, dtype=np.int64),
        np.asarray(tfs, dtype=np.int32),
    )


def _parts_from_segments(segments: Sequence[_Segment]) -> _Parts:
    """The live pages of ``segments`` as one :class:`_Parts` (a merge)."""
    ids: list[str] = []
    lengths: list[np.ndarray] = []
    vocab: list[str] = []
    p_term: list[np.ndarray] = []
    p_doc: list[np.ndarray] = []
    p_tf: list[np.ndarray] = []
    doc_base = 0
    term_base = 0
    for seg in segments:
        rows = seg.live_rows()
        remap = np.full(seg.size, -1, dtype=np.int64)
        remap[rows] = np.arange(len(rows)) + doc_base
        all_ids = seg.ids.all()
        ids.extend(all_ids[i] for i in rows.tolist())
        lengths.append(np.asarray(seg.lengths)[rows])
        seg_terms = seg.terms.all()
        counts = np.diff(np.asarray(seg.term_ptr))
        term_of = np.repeat(np.arange(len(seg_terms), dtype=np.int64), counts)
        docs = remap[np.asarray(seg.post_doc)]
        keep = docs >= 0
        vocab.extend(seg_terms)
        p_term.append(term_of[keep] + term_base)
        p_doc.append(docs[keep])
        p_tf.append(np.asarray(seg.post_tf)[keep])
        doc_base += len(rows)
        term_base += len(seg_terms)

    def cat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype=dtype)

    return _Parts(
        ids, cat(lengths, np.int32), vocab, cat(p_term, np.int64), cat(p_doc, np.int64), cat(p_tf, np.int32)
    )


def _finish(parts: _Parts, name: str) -> _Segment:
    """Sort pages by id and terms by value, postings by (term, page): an in-memory segment."""
    n = len(parts.ids)
    id_order = sorted(range(n), key=parts.ids.__getitem__)
    doc_rank = np.empty(n, dtype=np.int64)
    doc_rank[np.asarray(id_order, dtype=np.int64)] = np.arange(n)
    sorted_ids = [parts.ids[i] for i in id_order]
    if parts.vocab:
        uniq, inverse = np.unique(np.asarray(parts.vocab, dtype=object).astype(str), return_inverse=True)
        vocab = uniq.tolist()
        term = inverse.reshape(-1)[parts.p_term]
    else:
        vocab, term = [], np.zeros(0, dtype=np.int64)
    doc = doc_rank[parts.p_doc] if n else np.zeros(0, dtype=np.int64)
    order = np.lexsort((doc, term))
    term, doc, tf = term[order], doc[order], parts.p_tf[order]
    term_ptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    if len(vocab):
        term_ptr[1:] = np.cumsum(np.bincount(term, minlength=len(vocab)))
    tblob, toff = _pack(vocab)
    iblob, ioff = _pack(sorted_ids)
    return _Segment(
        name=name,
        terms=_Strings(tblob, toff),
        term_ptr=term_ptr,
        post_doc=doc.astype(np.int32),
        post_tf=tf.astype(np.int32),
        ids=_Strings(iblob, ioff),
        lengths=parts.lengths[np.asarray(id_order, dtype=np.int64)] if n else parts.lengths,
    )


# -- files ------------------------------------------------------------------------------------------------

_ARRAYS = ("term_off", "term_ptr", "post_doc", "post_tf", "id_off", "lengths")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":
        _fsync_file(folder)


def _write_segment(folder: Path, seg: _Segment) -> None:
    """Write ``seg`` into ``folder/seg.name`` (a temporary folder renamed at the end)."""
    tmp = folder / f".tmp-{seg.name}"
    tmp.mkdir(parents=True)
    files = {
        "term_off": seg.terms._off,
        "term_ptr": seg.term_ptr,
        "post_doc": seg.post_doc,
        "post_tf": seg.post_tf,
        "id_off": seg.ids._off,
        "lengths": seg.lengths,
    }
    for key, arr in files.items():
        np.save(tmp / f"{key}.npy", np.ascontiguousarray(arr))
    (tmp / "terms.bin").write_bytes(bytes(seg.terms._blob))
    (tmp / "ids.bin").write_bytes(bytes(seg.ids._blob))
    for path in tmp.iterdir():
        _fsync_file(path)
    _fsync_dir(tmp)
    os.replace(tmp, folder / seg.name)


def _blob(path: Path) -> Any:
    if path.stat().st_size == 0:
        return b""
    return np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)  # plain views: no memmap overhead


_SEGMENT_NAME = re.compile(r"seg-[0-9a-f]{16}")
_DEAD_NAME = re.compile(r"dead-[0-9a-f]{16}\.npy")


def _read_segment(folder: Path, entry: dict[str, Any]) -> _Segment:
    # names come from the manifest (stored data): only names this module makes are opened
    if not _SEGMENT_NAME.fullmatch(str(entry["name"])) or not (
        entry.get("dead") is None or _DEAD_NAME.fullmatch(str(entry["dead"]))
    ):
        raise ValueError(f"the manifest names a file this index never writes: {entry['name']!r}")
    path = folder / str(entry["name"])
    arrays = {
        key: np.load(path / f"{key}.npy", mmap_mode="r", allow_pickle=False).view(np.ndarray)
        for key in _ARRAYS
    }
    dead_file = entry.get("dead")
    dead = (
        np.load(path / dead_file, mmap_mode="r", allow_pickle=False).view(np.ndarray) if dead_file else None
    )
    seg = _Segment(
        name=str(entry["name"]),
        terms=_Strings(_blob(path / "terms.bin"), arrays["term_off"]),
        term_ptr=arrays["term_ptr"],
        post_doc=arrays["post_doc"],
        post_tf=arrays["post_tf"],
        ids=_Strings(_blob(path / "ids.bin"), arrays["id_off"]),
        lengths=arrays["lengths"],
        dead=dead,
        dead_file=dead_file,
    )
    if seg.size != int(entry["pages"]) or len(seg.terms) + 1 != len(seg.term_ptr):
        raise ValueError(f"segment {seg.name} does not match the manifest")
    return seg


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, json.dumps(data, ensure_ascii=False).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


# -- the index ---------------------------------------------------------------------------------------------


class SegmentedBM25:
    """BM25 over pages, saved in a folder (or kept in memory), updated by :meth:`apply`.

    Instantiate with :meth:`create` (new, empty), :meth:`open` (saved; ``None`` when the folder
    holds none) or :meth:`build` (from pages, in memory or saved). :meth:`search` answers; the
    instance is safe to search from several threads, while :meth:`apply` needs one writer at a time
    (the caller serializes writers across processes).

    Attributes:
        info: the manifest's free-form ``info`` (what the store records there: its collection id,
            a server stamp).
    """

    def __init__(
        self, folder: Path | None, manifest: dict[str, Any], segments: list[_Segment] | None
    ) -> None:
        self.folder = folder
        self._manifest = manifest
        self._segments = segments  # None until first needed (lazy load)
        self._stat = _stat_key(folder / MANIFEST) if folder is not None else None
        self._norms: dict[tuple[str, float], np.ndarray] = {}  # (segment, mean length) -> length norms

    # -- constructors ------------------------------------------------------------------------------

    @staticmethod
    def _empty_manifest(options: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "options": options,
            "generation": 0,
            "pages": 0,
            "length": 0,
            "segments": [],
            "info": info,
        }

    @classmethod
    def create(
        cls, folder: str | os.PathLike[str] | None, *, info: dict[str, Any] | None = None
    ) -> SegmentedBM25:
        """An empty index (saved in ``folder``, replacing what is there; ``None``: in memory)."""
        return cls.build(folder, [], info=info)

    @classmethod
    def build(
        cls,
        folder: str | os.PathLike[str] | None,
        pages: Iterable[tuple[str, str]],
        *,
        info: dict[str, Any] | None = None,
    ) -> SegmentedBM25:
        """Index ``(id, text)`` pairs from scratch (a repeated id keeps its last text).

        With ``folder`` the index is saved there atomically (one segment), replacing any index
        already there; readers of the old one reload.
        """
        options = tokenizer_options()
        docs = list(dict(pages).items())
        manifest = cls._empty_manifest(options, info or {})
        index = cls(Path(folder) if folder is not None else None, manifest, [])
        if index.folder is not None:
            index.folder.mkdir(parents=True, exist_ok=True)
            try:
                old = _read_manifest(index.folder)
            except StoreError:  # a torn manifest is what a rebuild replaces
                old = None
            if old is not None:
                manifest["generation"] = int(old.get("generation", 0)) + 1
        if docs:
            seg = _finish(_parts_from_texts(docs, options["stemmer_language"]), _new_name())
            index._add_segment(seg)
        index._commit()
        return index

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> SegmentedBM25 | None:
        """The index saved in ``folder`` (only its manifest is read now), or ``None`` if none is.

        Raises:
            StoreError: the manifest is unreadable or of another format (rebuild the index).
        """
        path = Path(folder)
        manifest = _read_manifest(path)
        if manifest is None:
            return None
        return cls(path, manifest, None)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts the saved changes (a reader compares it to tell an index is newer)."""
        return int(self._manifest["generation"])

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._manifest.get("info") or {})

    @property
    def options(self) -> dict[str, Any]:
        """The tokenizer options the index was built with (see :func:`tokenizer_options`)."""
        return dict(self._manifest["options"])

    def __len__(self) -> int:
        """Pages indexed (pages without terms included)."""
        return int(self._manifest["pages"])

    @property
    def segment_count(self) -> int:
        return len(self._manifest["segments"])

    def changed(self) -> bool:
        """Whether the saved index changed since this instance read it (one ``stat`` call)."""
        return self.folder is not None and _stat_key(self.folder / MANIFEST) != self._stat

    def _loaded(self) -> list[_Segment]:
        if self._segments is None:
            assert self.folder is not None
            for attempt in range(3):
                try:
                    self._segments = [_read_segment(self.folder, e) for e in self._manifest["segments"]]
                    break
                except (OSError, ValueError, KeyError) as e:
                    # a writer merged these segments away after this instance read the manifest: the
                    # newer manifest names what is there now (segments are never changed in place)
                    fresh = _read_manifest(self.folder) if attempt < 2 else None
                    if fresh is None or fresh == self._manifest:
                        raise StoreError(
                            f"{self.folder}: the BM25 index files are unreadable ({e}); rebuild the index"
                        ) from e
                    self._manifest, self._stat = fresh, _stat_key(self.folder / MANIFEST)
        assert self._segments is not None
        return self._segments

    def ids(self) -> list[str]:
        """Every indexed page id, sorted."""
        out: list[str] = []
        for seg in self._loaded():
            all_ids = seg.ids.all()
            out.extend(all_ids[i] for i in seg.live_rows().tolist())
        return sorted(out)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and any(seg.locate(doc_id) >= 0 for seg in self._loaded())

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Up to ``k`` ``(id, score)`` pairs with score > 0, best first, ties by id.

        A query of no indexed term, or an empty index, gives ``[]``.
        """
        check_int("k", k, least=0)
        pages = len(self)
        if k == 0 or pages == 0:
            return []
        terms = tokenize(query, stemmer_language=self._manifest["options"]["stemmer_language"])
        if not terms:
            return []
        return self._rank(self.scores(Counter(terms)), k)

    def scores(self, terms: Counter[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per segment (by position): (pages with a score, their scores), float64."""
        segments = self._loaded()
        n = len(self)
        mean_len = int(self._manifest["length"]) / n if n else 1.0
        k1, b = float(self._manifest["options"]["k1"]), float(self._manifest["options"]["b"])
        acc: dict[int, np.ndarray] = {}
        for term, count in terms.items():
            found = [(i, p) for i, seg in enumerate(segments) if (p := seg.postings(term)) is not None]
            df = sum(len(p[0]) for _, p in found)
            if df == 0:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for i, (docs, tf) in found:
                seg = segments[i]
                tf64 = tf.astype(np.float64)
                part = idf * tf64 / (tf64 + self._norm(seg, mean_len, k1, b)[docs])
                if count > 1:
                    part = part * count
                scores = acc.get(i)
                if scores is None:
                    scores = acc[i] = np.zeros(seg.size, dtype=np.float64)
                scores[docs] += part  # pages are unique within one term's postings
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, scores in acc.items():
            rows = np.flatnonzero(scores > 0)
            out[i] = (rows, scores[rows])
        return out

    def _norm(self, seg: _Segment, mean_len: float, k1: float, b: float) -> np.ndarray:
        """``k1 * (1 - b + b * len / mean_len)`` per page of ``seg``, computed once per mean length."""
        key = (seg.name, mean_len)
        norm = self._norms.get(key)
        if norm is None:
            if len(self._norms) > 64:
                self._norms.clear()
            norm = self._norms[key] = k1 * (
                1.0 - b + b * np.asarray(seg.lengths, dtype=np.float64) / mean_len
            )
        return norm

    def _rank(self, per_segment: dict[int, tuple[np.ndarray, np.ndarray]], k: int) -> list[tuple[str, float]]:
        if not per_segment:
            return []
        segments = self._loaded()
        seg_of = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, (r, _) in per_segment.items()])
        rows = np.concatenate([r for r, _ in per_segment.values()])
        scores = np.concatenate([s for _, s in per_segment.values()])
        if len(scores) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            threshold = scores[top].min()
            # everything above the k-th score, and at the k-th score the first k of each segment
            # (a segment's rows are in id order), so ties are broken by id as a full sort would
            above = np.flatnonzero(scores > threshold)
            tied = np.flatnonzero(scores == threshold)
            keep = [above]
            for i in np.unique(seg_of[tied]).tolist():
                keep.append(tied[seg_of[tied] == i][:k])
            chosen = np.concatenate(keep)
        else:
            chosen = np.arange(len(scores))
        hits = [(segments[int(seg_of[j])].ids[int(rows[j])], float(scores[j])) for j in chosen.tolist()]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def group_document_frequencies(
        self, groups: Sequence[Collection[str]]
    ) -> tuple[list[Counter[str]], Counter[str], int]:
        """For each group of page ids, how many of its pages hold each term; the same over all
        pages; and the page count.

        What naming a cluster by its distinctive terms needs. Reads every segment's postings once:
        meant for clustering, not for queries.
        """
        group_of: dict[str, int] = {}
        for g, ids in enumerate(groups):
            for doc_id in ids:
                group_of[doc_id] = g
        within: list[Counter[str]] = [Counter() for _ in groups]
        df: Counter[str] = Counter()
        for seg in self._loaded():
            label = np.full(seg.size, -1, dtype=np.int64)
            for row, doc_id in enumerate(seg.ids.all()):
                label[row] = group_of.get(doc_id, -1)
            live = np.zeros(seg.size, dtype=bool)
            live[seg.live_rows()] = True
            label[~live] = -1
            terms = seg.terms.all()
            vocab = len(terms)
            term_of = np.repeat(np.arange(vocab, dtype=np.int64), np.diff(np.asarray(seg.term_ptr)))
            docs = np.asarray(seg.post_doc)
            alive = live[docs]
            for t, count in enumerate(np.bincount(term_of[alive], minlength=vocab).tolist()):
                if count:
                    df[terms[t]] += count
            inside = label[docs] >= 0
            keys, counts = np.unique(label[docs][inside] * vocab + term_of[inside], return_counts=True)
            for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
                within[key // vocab][terms[key % vocab]] += count
        return within, df, len(self)

    # -- writing -----------------------------------------------------------------------------------

    def apply(
        self,
        adds: Sequence[tuple[str, str]] = (),
        deletes: Collection[str] = (),
        *,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Add ``(id, text)`` pages (an id already indexed is replaced) and delete ids; save.

        Unknown ids in ``deletes`` are ignored. The caller holds the writers' lock. On disk the
        change becomes visible at once, by the manifest's atomic replace; a crash before it leaves
        the previous index (and unreferenced files that the next write removes).
        """
        if self.changed():
            raise StoreError(f"{self.folder}: the BM25 index changed on disk since it was read; reopen it")
        segments = list(self._loaded())
        doomed = set(deletes) | {doc_id for doc_id, _ in adds}
        removed_pages = 0
        removed_length = 0
        if doomed:
            for pos, seg in enumerate(segments):
                rows = [r for d in doomed if (r := seg.locate(d)) >= 0]
                if not rows:
                    continue
                dead = np.zeros(seg.size, dtype=np.uint8) if seg.dead is None else np.array(seg.dead)
                dead[rows] = 1
                removed_pages += len(rows)
                removed_length += int(np.asarray(seg.lengths)[rows].sum())
                segments[pos] = _Segment(
                    seg.name,
                    seg.terms,
                    seg.term_ptr,
                    seg.post_doc,
                    seg.post_tf,
                    seg.ids,
                    seg.lengths,
                    dead,
                    f"dead-{uuid.uuid4().hex[:16]}.npy",
                )
        self._manifest = dict(self._manifest)
        self._manifest["pages"] = len(self) - removed_pages
        self._manifest["length"] = int(self._manifest["length"]) - removed_length
        self._manifest["generation"] = self.generation + 1
        if info is not None:
            self._manifest["info"] = dict(info)
        self._segments = segments
        self._manifest["segments"] = [self._entry(s) for s in segments]
        docs = list(dict(adds).items())
        if docs:
            self._add_segment(
                _finish(_parts_from_texts(docs, self._manifest["options"]["stemmer_language"]), _new_name())
            )
        self._merge()
        self._commit()

    def _entry(self, seg: _Segment) -> dict[str, Any]:
        return {"name": seg.name, "pages": seg.size, "live": seg.live, "dead": seg.dead_file}

    def _add_segment(self, seg: _Segment) -> None:
        assert self._segments is not None
        self._segments.append(seg)
        self._manifest["pages"] = int(self._manifest["pages"]) + seg.size
        self._manifest["length"] = int(self._manifest["length"]) + int(np.asarray(seg.lengths).sum())
        self._manifest["segments"] = [self._entry(s) for s in self._segments]

    def _merge(self) -> None:
        """Tiered merging; a segment more than half dead is rewritten without its dead pages."""
        segs = self._segments
        assert segs is not None
        segs[:] = [s for s in segs if s.live > 0]
        while len(segs) >= 2 and segs[-2].live <= _MERGE_RATIO * segs[-1].live:
            merged = _finish(_parts_from_segments(segs[-2:]), _new_name())
            segs[-2:] = [merged]
        for pos, seg in enumerate(segs):
            if seg.dead is not None and seg.live * 2 < seg.size:
                segs[pos] = _finish(_parts_from_segments([seg]), _new_name())
        self._manifest["segments"] = [self._entry(s) for s in segs]

    def _commit(self) -> None:
        """Write new segments and tombstones, replace the manifest, remove files no longer used."""
        if self.folder is None:
            return
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        assert self._segments is not None
        for seg in self._segments:
            seg_dir = folder / seg.name
            if not seg_dir.is_dir():
                _write_segment(folder, seg)
            if seg.dead is not None and seg.dead_file and not (seg_dir / seg.dead_file).is_file():
                tmp = seg_dir / f".{seg.dead_file}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(seg.dead, dtype=np.uint8))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, seg_dir / seg.dead_file)
                _fsync_dir(seg_dir)
        _write_json(folder / MANIFEST, self._manifest)
        self._stat = _stat_key(folder / MANIFEST)
        # reload what was just written from disk (memory-mapped), so memory holds no second copy
        self._segments = None
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        """Remove segments and tombstones the manifest does not name (a reader that still maps one
        keeps its data on POSIX; a reader that had not opened it yet reopens the new manifest)."""
        assert self.folder is not None
        used = {e["name"]: e.get("dead") for e in self._manifest["segments"]}
        for path in self.folder.iterdir():
            name = path.name
            if path.is_dir() and (name.startswith("seg-") or name.startswith(".tmp-seg-")):
                if name not in used:
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                for file in path.glob("dead-*.npy"):
                    if file.name != used[name]:
                        _unlink(file)
                for file in path.glob(".dead-*.tmp"):
                    _unlink(file)
            elif name.startswith(f".{MANIFEST}.") and name.endswith(".tmp"):
                _unlink(path)


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as e:  # Windows: a reader still maps it; the next write tries again
        logger.debug("could not remove %s: %s", path, e)


def _new_name() -> str:
    return f"seg-{uuid.uuid4().hex[:16]}"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StoreError(f"{folder}: the BM25 manifest is unreadable ({e}); rebuild the index") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StoreError(f"{folder}: BM25 index format {data.get('format')!r} is not {FORMAT}; rebuild it")
    return data

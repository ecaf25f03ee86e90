"""Answer: question -> retrieve pages -> generate a cited answer.

Generators share one small protocol, :class:`Generator`: given the question and the retrieved
pages, return the answer text with citations written as ``[<file> p.<N>]``. :func:`answer` parses
those citations and matches them to the retrieved pages. The offline generator,
:class:`ExtractiveGenerator`, quotes the sentences that best match the question; VLM and Ollama
generators plug into the same slot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import Hit

__all__ = [
    "Answer",
    "Citation",
    "Generator",
    "StreamingGenerator",
    "ExtractiveGenerator",
    "answer",
    "citation_label",
    "page_reference",
    "parse_citations",
    "resolve_citations",
    "source_name",
]

# One level of brackets may nest inside a citation: "[report [final].pdf p.3]".
_BRACKETS = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])+)\]")
# One citation inside brackets: "<file> p.<N>", also "<file>, p. N", "<file> page N", "<file> pp. N",
# each maybe followed by the printed page label: "<file> p.41 (printed 37)".
_ONE_CITATION = re.compile(
    r"^\s*(.+?)[\s,:]+(?:pp?\.?|pages?)\s*(\d+)(?:\s*\(\s*printed\b[^()]*\))?\s*$", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n{2,}")


def source_name(source: str) -> str:
    """The file name of a path or URL (what citations show)."""
    return source.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] or source


def page_reference(source: str, page: int, page_label: str | None = None) -> str:
    """``<file> p.<N>``, plus `` (printed <label>)`` when the PDF's printed page label differs from N.

    ``N`` is always the page's 1-based index in the file (what ids, ``eval`` keys and PDF viewers'
    "go to page" use); the label is what is printed on the page (``37``, ``iv``, ``A-3``).

    Example:
        >>> page_reference("docs/R-FAQ.pdf", 41, "37"), page_reference("a.pdf", 3, "3")
        ('R-FAQ.pdf p.41 (printed 37)', 'a.pdf p.3')
    """
    ref = f"{source_name(source)} p.{page}"
    return f"{ref} (printed {page_label})" if page_label and page_label != str(page) else ref


def citation_label(hit: Hit) -> str:
    """``[<file> p.<N>]`` for a page, ``[<file> p.<N> (printed <label>)]`` when its printed label differs."""
    return f"[{page_reference(hit.source, hit.page, getattr(hit, 'page_label', None))}]"


def parse_citations(text: str) -> list[tuple[str, int]]:
    """The ``(file, page)`` pairs cited in ``text``, in order of first appearance.

    Reads ``[<file> p.<N>]`` and the variants models write: ``[<file>, p. N]``, ``[<file> page N]``
    and several citations in one pair of brackets separated by ``;``.
    """
    seen: dict[tuple[str, int], None] = {}
    for m in _BRACKETS.finditer(text):
        for part in m.group(1).split(";"):
            one = _ONE_CITATION.match(part)
            if one:
                seen[(one.group(1).strip().strip("\"'“”"), int(one.group(2)))] = None
    return list(seen)


def _name_keys(name: str) -> tuple[str, str]:
    """Case-folded file name, and the same without its extension (what a model may drop)."""
    low = name.strip().casefold()
    stem = low.rsplit(".", 1)[0] if "." in low else low
    return low, stem


@dataclass(frozen=True, slots=True)
class Citation:
    """A page cited by an answer.

    Attributes:
        source: path or URL as indexed.
        page: 1-based page number.
        image: the page image in the store, if any.
        score: the page's retrieval score.
        page_label: the page's printed label, when the PDF defines page labels.
    """

    source: str
    page: int
    image: str | None
    score: float
    page_label: str | None = None


@dataclass(slots=True)
class Answer:
    """A generated answer with its evidence.

    Attributes:
        question: the question asked.
        text: the answer, citing pages as ``[<file> p.<N>]``.
        citations: the cited pages that match a retrieved page.
        retrieved: every page retrieved for the question, best first.
        unmatched_citations: citations in ``text`` that match no retrieved page (a generator
            inventing sources); empty for the extractive generator.
    """

    question: str
    text: str
    citations: list[Citation]
    retrieved: list[Hit]
    unmatched_citations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``pagesight ask --json`` prints)."""
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "unmatched_citations": self.unmatched_citations,
            "retrieved": [
                {
                    "source": h.source,
                    "page": h.page,
                    "page_label": h.page_label,
                    "score": h.score,
                    "image": str(h.image) if h.image else None,
                    "text": h.text,
                }
                for h in self.retrieved
            ],
        }


class Generator(Protocol):
    """Writes an answer from retrieved pages, citing them as ``[<file> p.<N>]``."""

    def generate(self, question: str, pages: Sequence[Hit]) -> str: ...


@runtime_checkable
class StreamingGenerator(Generator, Protocol):
    """A generator that can also hand out its answer piece by piece as the model writes it."""

    def stream(self, question: str, pages: Sequence[Hit]) -> Iterator[str]: ...


# A sentence that announces what follows ("execute either:", "with following steps.", "try the
# following"): what it announces (a command, the first step) comes on the next lines.
_INTRODUCES = re.compile(r"(?::|\b(?:the\s+)?following(?:\s+\w+)?\.?|\bas\s+follows\.?)$", re.IGNORECASE)
_MIN_SENTENCE, _MAX_PASSAGE = 40, 600


def _with_what_follows(paragraphs: list[list[str]]) -> list[list[str]]:
    """Join each sentence that introduces what follows with the sentences after it, across paragraph
    breaks, until at least ``_MIN_SENTENCE`` characters of them are in (a short command, a "1.")
    and they do not end with a colon themselves (``stanza like "hosts: files dns"``)."""
    pieces = [(n, s) for n, sentences in enumerate(paragraphs) for s in sentences if s]
    joined: list[list[str]] = [[] for _ in paragraphs]
    i = 0
    while i < len(pieces):
        n, sentence = pieces[i]
        i += 1
        if _INTRODUCES.search(sentence):
            taken = ""
            while i < len(pieces) and (len(taken) < _MIN_SENTENCE or _INTRODUCES.search(taken)):
                nxt = pieces[i][1]
                if len(sentence) + len(taken) + len(nxt) + 1 > _MAX_PASSAGE:
                    break
                taken = f"{taken} {nxt}".strip()
                i += 1
            sentence = f"{sentence} {taken}".strip()
        joined[n].append(sentence)
    return joined


def _passages(text: str) -> list[str]:
    """Candidate quotes of a page: each sentence, and each pair of neighbours in one paragraph.

    A sentence that ends with a colon (or "the following", "as follows") is quoted with what it
    announces: the ``dpkg --search foo`` after "To identify the package ... execute either:".
    """
    out: list[str] = []
    paragraphs = [
        [" ".join(s.split()) for s in _SENTENCE_END.split(paragraph)]
        for paragraph in re.split(r"\n\s*\n", text)
    ]
    for parts in _with_what_follows(paragraphs):
        sentences = [s for s in parts if len(s) >= _MIN_SENTENCE]
        out += [s for s in sentences if len(s) <= _MAX_PASSAGE]
        pairs = zip(sentences, sentences[1:], strict=False)
        out += [f"{a} {b}" for a, b in pairs if len(a) + len(b) <= _MAX_PASSAGE]
    return out


class ExtractiveGenerator:
    """Offline answers: quote the passages of the retrieved pages that best match the question.

    Candidate passages (sentences and pairs of neighbouring sentences) of the top ``pages`` pages
    are scored by cosine similarity to the question with the store's encoder, plus the share of
    the question's words they contain (BM25's tokenizer: stemmed, stopwords dropped) and a small
    bonus for the page's retrieval score. The best ``max_passages`` non-overlapping passages are
    quoted, each followed by its page citation, in the order of the pages' retrieval scores (the
    top page's quotes first). A sentence ending with a colon ("execute either:") is quoted with
    what it announces (the command on the next line).

    Args:
        encoder: the store's encoder, dense or late interaction (then passages are scored by
            MaxSim divided by the number of query tokens).
        max_passages: passages quoted at most.
        pages: how many of the retrieved pages to read.
        lexical_weight: weight of the word-overlap share.
        page_weight: weight of the page's normalized retrieval score.
    """

    def __init__(
        self,
        encoder: DenseTextEncoder | LateInteractionEncoder,
        *,
        max_passages: int = 2,
        pages: int = 3,
        lexical_weight: float = 0.3,
        page_weight: float = 0.3,
    ) -> None:
        self.encoder = encoder
        self.max_passages = max_passages
        self.pages = pages
        self.lexical_weight = lexical_weight
        self.page_weight = page_weight

    def _similarity(self, question: str, texts: list[str]) -> np.ndarray:
        """Cosine similarity (dense) or MaxSim per query token (late interaction), about -1..1."""
        if self.encoder.info.kind == "late-interaction":
            from pagesight.retrieval.maxsim import maxsim, pack

            late = cast(LateInteractionEncoder, self.encoder)
            q_tokens = late.encode_queries([question])[0]
            return maxsim(q_tokens, pack(late.encode_documents(texts))) / max(len(q_tokens), 1)
        dense = cast(DenseTextEncoder, self.encoder)
        # short-lived vectors: the encoder's light path when it has one (no torch for `ask`)
        passages = getattr(dense, "encode_passages", dense.encode_documents)(texts)
        return np.asarray(passages @ dense.encode_queries([question])[0])

    def generate(self, question: str, pages: Sequence[Hit]) -> str:
        from pagesight.retrieval.hybrid import tokenize

        top = list(pages[: self.pages])
        candidates = [(text, hit) for hit in top for text in _passages(hit.text)]
        if not candidates:
            if top:
                return "The best matching pages have no text to quote; see " + ", ".join(
                    citation_label(h) for h in top
                )
            return "No indexed page matches the question."
        dense = self._similarity(question, [c[0] for c in candidates])
        q_words = set(tokenize(question))
        lexical = np.array(
            [len(q_words & set(tokenize(c[0]))) / max(len(q_words), 1) for c in candidates], dtype=np.float32
        )
        best_page = max((h.score for h in top), default=0.0) or 1.0
        page = np.array([c[1].score / best_page for c in candidates], dtype=np.float32)
        scores = dense + self.lexical_weight * lexical + self.page_weight * page
        chosen: list[tuple[str, Hit]] = []
        for i in np.argsort(-scores, kind="stable"):
            text, hit = candidates[i]
            if any(text in c or c in text for c, h in chosen if h.id == hit.id):
                continue
            chosen.append((text, hit))
            if len(chosen) == self.max_passages:
                break
        # best page first (the order of the retrieved pages, which the web app shows beside the
        # answer); a page's own quotes stay in the order of their scores
        rank = {h.id: i for i, h in enumerate(top)}
        chosen.sort(key=lambda c: rank[c[1].id])
        return "\n".join(f"“{text}” {citation_label(hit)}" for text, hit in chosen)


def resolve_citations(question: str, text: str, retrieved: Sequence[Hit]) -> Answer:
    """Match the citations in ``text`` to the ``retrieved`` pages and build the :class:`Answer`.

    A citation matches a retrieved page with the same page number whose file name is the same,
    ignoring case and, failing that, the extension. Anything else is listed in
    ``unmatched_citations``.
    """
    exact: dict[tuple[str, int], Hit] = {}
    loose: dict[tuple[str, int], Hit] = {}
    for h in retrieved:
        low, stem = _name_keys(source_name(h.source))
        exact.setdefault((low, h.page), h)
        loose.setdefault((stem, h.page), h)
    citations: list[Citation] = []
    unmatched: list[str] = []
    seen: set[str] = set()
    for name, page in parse_citations(text):
        low, stem = _name_keys(name)
        hit = exact.get((low, page)) or loose.get((stem, page))
        if hit is None:
            unmatched.append(f"[{name} p.{page}]")
        elif hit.id not in seen:
            seen.add(hit.id)
            image = str(hit.image) if hit.image else None
            citations.append(Citation(hit.source, hit.page, image, hit.score, hit.page_label))
    return Answer(question, text, citations, list(retrieved), unmatched)


def answer(
    question: str,
    searcher: PageSearcher,
    generator: Generator,
    *,
    k: int = 5,
    on_token: Callable[[str], None] | None = None,
) -> Answer:
    """Retrieve ``k`` pages for ``question`` and let ``generator`` answer from them.

    Args:
        question: the question.
        searcher: retrieves (and, when it has a reranker, reranks) the pages.
        generator: writes the answer.
        k: pages retrieved and shown to the generator.
        on_token: called with each piece of the answer as it is written, when ``generator``
            streams (:class:`StreamingGenerator`); otherwise once with the whole answer.

    Returns:
        An :class:`Answer` whose ``citations`` are the cited pages found among the retrieved ones
        and whose ``unmatched_citations`` lists any other citation the generator wrote.

    Raises:
        ModelNotAvailableError: a generator with a ``check()`` (Ollama) finds its server down or
            its model not pulled; this is asked before anything is retrieved.
    """
    check = getattr(generator, "check", None)
    if callable(check):
        check()  # a server that is down fails in a second, not after the retrieval model has loaded
    retrieved = searcher.search(question, k=k)
    if on_token is not None and isinstance(generator, StreamingGenerator):
        pieces: list[str] = []
        for piece in generator.stream(question, retrieved):
            pieces.append(piece)
            on_token(piece)
        text = "".join(pieces)
    else:
        text = generator.generate(question, retrieved)
        if on_token is not None:
            on_token(text)
    return resolve_citations(question, text, retrieved)

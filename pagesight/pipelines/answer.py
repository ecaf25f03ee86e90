"""Answer: question -> retrieve pages -> generate a cited answer.

Generators share one small protocol, :class:`Generator`: given the question and the retrieved
pages, return the answer text with citations written as ``[<file> p.<N>]``. :func:`answer` parses
those citations and matches them to the retrieved pages. The offline generator,
:class:`ExtractiveGenerator`, quotes the sentences that best match the question; VLM and Ollama
generators plug into the same slot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from pagesight.models.base import DenseTextEncoder, LateInteractionEncoder
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import Hit

__all__ = [
    "Answer",
    "Citation",
    "Generator",
    "ExtractiveGenerator",
    "answer",
    "citation_label",
    "parse_citations",
]

_CITATION = re.compile(r"\[([^\[\]]+?) p\.(\d+)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n{2,}")


def source_name(source: str) -> str:
    """The file name of a path or URL (what citations show)."""
    return source.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1] or source


def citation_label(hit: Hit) -> str:
    """``[<file> p.<N>]`` for a page."""
    return f"[{source_name(hit.source)} p.{hit.page}]"


def parse_citations(text: str) -> list[tuple[str, int]]:
    """The ``(file, page)`` pairs cited in ``text``, in order of first appearance."""
    seen: dict[tuple[str, int], None] = {}
    for m in _CITATION.finditer(text):
        seen[(m.group(1).strip(), int(m.group(2)))] = None
    return list(seen)


@dataclass(frozen=True, slots=True)
class Citation:
    """A page cited by an answer.

    Attributes:
        source: path or URL as indexed.
        page: 1-based page number.
        image: the page image in the store, if any.
        score: the page's retrieval score.
    """

    source: str
    page: int
    image: str | None
    score: float


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


def _passages(text: str) -> list[str]:
    """Candidate quotes of a page: each sentence, and each pair of neighbours in one paragraph."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        parts = (" ".join(s.split()) for s in _SENTENCE_END.split(paragraph))
        sentences = [s for s in parts if len(s) >= 40]
        out += [s for s in sentences if len(s) <= 600]
        out += [f"{a} {b}" for a, b in zip(sentences, sentences[1:], strict=False) if len(a) + len(b) <= 600]
    return out


class ExtractiveGenerator:
    """Offline answers: quote the passages of the retrieved pages that best match the question.

    Candidate passages (sentences and pairs of neighbouring sentences) of the top ``pages`` pages
    are scored by cosine similarity to the question with the store's encoder, plus the share of
    the question's words they contain (BM25's tokenizer: stemmed, stopwords dropped) and a small
    bonus for the page's retrieval score. The best ``max_passages`` non-overlapping passages are
    quoted, each followed by its page citation.

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
        return np.asarray(dense.encode_documents(texts) @ dense.encode_queries([question])[0])

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
        return "\n".join(f"“{text}” {citation_label(hit)}" for text, hit in chosen)


def answer(
    question: str,
    searcher: PageSearcher,
    generator: Generator,
    *,
    k: int = 5,
) -> Answer:
    """Retrieve ``k`` pages for ``question`` and let ``generator`` answer from them.

    Returns:
        An :class:`Answer` whose ``citations`` are the cited pages found among the retrieved ones
        and whose ``unmatched_citations`` lists any other citation the generator wrote.
    """
    retrieved = searcher.search(question, k=k)
    text = generator.generate(question, retrieved)
    by_label = {(source_name(h.source), h.page): h for h in retrieved}
    citations: list[Citation] = []
    unmatched: list[str] = []
    for name, page in parse_citations(text):
        hit = by_label.get((name, page))
        if hit is None:
            unmatched.append(f"[{name} p.{page}]")
        else:
            citations.append(Citation(hit.source, hit.page, str(hit.image) if hit.image else None, hit.score))
    return Answer(question, text, citations, retrieved, unmatched)

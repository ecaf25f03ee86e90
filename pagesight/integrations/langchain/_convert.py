"""Pages to and from LangChain ``Document`` s: the one place the adapters and the chain build them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.documents import Document

from pagesight.integrations._convert import hit_metadata, metadata_hit, page_hit, rerank_candidate
from pagesight.types import Hit

if TYPE_CHECKING:
    from pagesight.models.rerank import RerankCandidate

__all__ = ["document_candidate", "document_hit", "hit_document", "own_document_hit"]


def hit_document(hit: Hit, original: Document | None = None) -> Document:
    """The page as a Document: the original's metadata (if any), then ``source/page/image/score/id``."""
    metadata = {**(original.metadata if original is not None else {}), **hit_metadata(hit)}
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


def document_hit(doc: Document, root: Path | None) -> Hit:
    """A retrieved Document read as a page; a reranker's ``relevance_score`` becomes its score."""
    metadata = doc.metadata or {}
    relevance = metadata.get("relevance_score")
    score = float(relevance) if isinstance(relevance, (int, float)) else None
    return page_hit(doc.page_content, metadata, doc_id=doc.id, score=score, root=root)


def own_document_hit(doc: Document) -> Hit:
    """A page back from a Document that :func:`hit_document` built (its metadata is complete)."""
    return metadata_hit(doc.page_content, doc.metadata, doc_id=doc.id)


def document_candidate(doc: Document, root: Path | None) -> RerankCandidate:
    """What the reranker scores for a Document: its text and its page image (relative to ``root``)."""
    return rerank_candidate(doc.page_content, doc.metadata, root)

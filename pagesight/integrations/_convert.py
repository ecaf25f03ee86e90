"""Pages to and from framework documents' metadata, without framework imports.

A LangChain ``Document`` and a LlamaIndex node are both text plus a metadata mapping; this module
reads and writes that mapping for every adapter, chain and query engine. The framework objects
themselves are built in one module per framework (:mod:`pagesight.integrations.langchain._convert`,
:mod:`pagesight.integrations.llama_index._convert`), both on these functions:

- :func:`hit_metadata` writes a page as ``source, page, image, score, id, text_source`` (and
  ``page_label``, the printed page label, when the PDF has one);
- :func:`metadata_hit` reads that back as is;
- :func:`page_hit` reads a foreign document (any loader's metadata, see :func:`page_number`);
- :func:`rerank_candidate` turns a document into what :class:`~pagesight.models.rerank.Reranker`
  scores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.types import Hit, as_page_label, as_text_source

if TYPE_CHECKING:
    from pagesight.models.rerank import RerankCandidate

__all__ = [
    "hit_metadata",
    "metadata_hit",
    "page_hit",
    "page_number",
    "rerank_candidate",
    "source_of",
]


def hit_metadata(hit: Hit, *, score: bool = True) -> dict[str, Any]:
    """``source, page, image, score, id, text_source`` of a page (``image``: a path string or ``None``).

    ``score=False`` leaves ``score`` out (the late-interaction node retriever carries it on the
    ``NodeWithScore`` only).
    """
    metadata: dict[str, Any] = {
        "source": hit.source,
        "page": hit.page,
        "image": str(hit.image) if hit.image is not None else None,
    }
    if score:
        metadata["score"] = hit.score
    metadata["id"] = hit.id
    metadata["text_source"] = hit.text_source  # "layer", "ocr" or "both"
    if hit.page_label:  # the printed label ("37", "iv"); "page" stays the 1-based index
        metadata["page_label"] = hit.page_label
    return metadata


def metadata_hit(text: str, metadata: Mapping[str, Any], *, doc_id: str | None = None) -> Hit:
    """A page back from metadata that :func:`hit_metadata` wrote (read as is: no page-number rules)."""
    image = metadata.get("image")
    return Hit(
        id=str(doc_id or metadata["id"]),
        source=str(metadata["source"]),
        page=int(metadata["page"]),
        text=text or "",
        image=Path(image) if image else None,
        width=0,
        height=0,
        content_hash="",
        score=float(metadata["score"]),
        text_source=as_text_source(metadata.get("text_source")),
        page_label=as_page_label(metadata.get("page_label")),
    )


def source_of(metadata: Mapping[str, Any]) -> str:
    """A document's source: ``source``, else ``file_path`` / ``file_name``, else ``"document"``."""
    for key in ("source", "file_path", "file_name"):
        value = metadata.get(key)
        if value:
            return str(value)
    return "document"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def page_number(metadata: Mapping[str, Any]) -> int:
    """A document's 1-based page number.

    - a document pagesight wrote (:func:`hit_metadata`: it carries ``text_source``) keeps its
      1-based ``page``; its ``page_label`` is the printed label, shown beside it in citations;
    - ``page_label`` (the printed page number LangChain's ``PyPDFLoader`` and LlamaIndex's PDF
      readers write) wins when it is a positive number;
    - else ``page``, read as 1-based (pagesight's convention), except that a document which also
      has a non-numeric ``page_label`` (``"iv"``) comes from a loader counting ``page`` from 0,
      so 1 is added;
    - a document with neither is one page: 1.

    ``page`` from a loader that counts from 0 and writes no ``page_label`` (``PyMuPDFLoader``) is
    taken as 1-based, one less than the printed page: add 1 to it before the chain sees it.
    """
    label = metadata.get("page_label")
    own = _as_int(metadata.get("page")) if "text_source" in metadata else None
    if own is not None and own >= 1:
        return own
    labelled = _as_int(label)
    if labelled is not None and labelled >= 1:
        return labelled
    page = _as_int(metadata.get("page"))
    if page is not None:
        return page + 1 if label is not None else page
    return 1


def _image_path(metadata: Mapping[str, Any], image: Any, root: Path | None) -> Any:
    """``metadata["image"]`` (else ``image``), made absolute against ``root`` when it is a relative path."""
    picture = metadata.get("image") or image
    relative = isinstance(picture, (str, os.PathLike)) and str(picture) and not Path(picture).is_absolute()
    if relative and root is not None:
        return root / picture
    return picture


def page_hit(
    text: str,
    metadata: Mapping[str, Any],
    *,
    doc_id: str | None = None,
    score: float | None = None,
    image: Any = None,
    root: Path | None = None,
) -> Hit:
    """Read a framework document (text and metadata) as a page.

    Args:
        text: the document's text.
        metadata: its metadata; ``source``, ``page`` (see :func:`page_number`), ``image``,
            ``score``, ``id``, ``width``, ``height`` and ``content_hash`` are read when present.
        doc_id: the document's id (else ``metadata["id"]``, else ``"<source>#p<page>"``).
        score: the retrieval score (else ``metadata["score"]``, else 0).
        image: the page image when the metadata has none (a LlamaIndex ``ImageNode``'s path).
        root: the folder relative image paths are relative to (``None``: as given).
    """
    source = source_of(metadata)
    page = page_number(metadata)
    picture = _image_path(metadata, image, root)
    path = Path(picture) if isinstance(picture, (str, os.PathLike)) and str(picture) else None
    if score is None:
        raw = metadata.get("score")
        score = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else 0.0
    width, height = _as_int(metadata.get("width")) or 0, _as_int(metadata.get("height")) or 0
    return Hit(
        id=str(doc_id or metadata.get("id") or f"{source}#p{page}"),
        source=source,
        page=page,
        text=text or "",
        image=path,
        width=width,
        height=height,
        content_hash=str(metadata.get("content_hash") or ""),
        score=float(score),
        text_source=as_text_source(metadata.get("text_source")),
        page_label=as_page_label(metadata.get("page_label")),
    )


def rerank_candidate(
    text: str, metadata: Mapping[str, Any], root: Path | None, image: Any = None
) -> RerankCandidate:
    """A reranker candidate from a document's text and metadata.

    The image is ``metadata["image"]`` (else ``image``): an absolute path, or one relative to
    ``root``. ``source`` and ``page`` come along so an unreadable image is named in the error.
    """
    from pagesight.models.rerank import RerankCandidate

    picture = _image_path(metadata, image, root)
    page = metadata.get("page")
    source = metadata.get("source")
    return RerankCandidate(
        text=text,
        image=picture or None,
        source=str(source) if source is not None else None,
        page=page if isinstance(page, int) else None,
    )

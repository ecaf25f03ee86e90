"""Where adapter fields become encoders (shared by the LangChain and LlamaIndex adapters)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight.models.matryoshka import MatryoshkaEncoder

if TYPE_CHECKING:
    from pagesight.models.colembed import ColEmbedEncoder
    from pagesight.models.rerank import RerankCandidate, Reranker
    from pagesight.models.vl import VLEncoder
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore


def matryoshka_encoder(fields: Any, *, batch_size: int) -> MatryoshkaEncoder:
    """Build the encoder from an adapter's fields (cheap: resolves the name, checks options; no weights).

    ``query_prefix`` / ``document_prefix`` override the model's own prefixes when not ``None``.
    """
    prefixes: dict[str, str] = {}
    if fields.query_prefix is not None:
        prefixes["search_query"] = fields.query_prefix
    if fields.document_prefix is not None:
        prefixes["search_document"] = fields.document_prefix
    return MatryoshkaEncoder(
        fields.model,
        dimensions=fields.dimensions,
        backend=fields.backend,
        device=fields.device,
        batch_size=batch_size,
        trust_remote_code=fields.trust_remote_code,
        prefixes=prefixes,
        window_overlap=fields.window_overlap,
        ollama_host=fields.base_url,
        show_progress=fields.show_progress,
    )


def colembed_encoder(fields: Any, *, batch_size: int) -> ColEmbedEncoder:
    """Build the late-interaction encoder from an adapter's fields (cheap: no weights load)."""
    from pagesight.models.colembed import ColEmbedEncoder

    return ColEmbedEncoder(
        fields.model,
        backend=fields.backend,
        device=fields.device,
        dtype=fields.dtype,
        batch_size=batch_size,
        trust_remote_code=fields.trust_remote_code,
        revision=fields.revision,
        attn_implementation=fields.attn_implementation,
        page_input=fields.page_input,
        show_progress=fields.show_progress,
    )


def vl_encoder(fields: Any, *, batch_size: int) -> VLEncoder:
    """Build the dense vision-language encoder from an adapter's fields (cheap: no weights load)."""
    from pagesight.models.vl import VLEncoder

    return VLEncoder(
        fields.model,
        backend=fields.backend,
        dimensions=fields.dimensions,
        device=fields.device,
        dtype=fields.dtype,
        batch_size=batch_size,
        trust_remote_code=fields.trust_remote_code,
        revision=fields.revision,
        attn_implementation=fields.attn_implementation,
        page_input=fields.page_input,
        text_model=fields.text_model,
        task=fields.task,
        show_progress=fields.show_progress,
    )


def build_reranker(fields: Any) -> Reranker:
    """Build the reranker from an adapter's fields (cheap: no weights load)."""
    from pagesight.models.rerank import Reranker

    return Reranker(
        fields.model,
        backend=fields.backend,
        device=fields.device,
        dtype=fields.dtype,
        batch_size=fields.batch_size,
        trust_remote_code=fields.trust_remote_code,
        revision=fields.revision,
        attn_implementation=fields.attn_implementation,
        page_input=fields.page_input,
        max_length=fields.max_length,
        show_progress=fields.show_progress,
    )


def image_root(store: PageStore | MultiVectorStore | str | Path | None) -> Path | None:
    """The folder that relative ``metadata["image"]`` paths are relative to (``None``: as given).

    A folder path is read as an embedded store's folder, whose images live in ``<folder>/images``.
    """
    if store is None:
        return None
    if isinstance(store, (str, Path)):
        from pagesight.retrieval.store import PageStore

        return PageStore(store).image_dir  # opens nothing: only the default image folder is needed
    return store.image_dir


def rerank_candidate(
    text: str, metadata: Mapping[str, Any], root: Path | None, image: Any = None
) -> RerankCandidate:
    """A reranker candidate from a document's text and metadata.

    The image is ``metadata["image"]`` (else ``image``): an absolute path, or one relative to
    ``root``. ``source`` and ``page`` come along so an unreadable image is named in the error.
    """
    from pagesight.models.rerank import RerankCandidate

    image = metadata.get("image") or image
    if isinstance(image, (str, os.PathLike)) and root is not None and not Path(image).is_absolute():
        image = root / image
    page = metadata.get("page")
    source = metadata.get("source")
    return RerankCandidate(
        text=text,
        image=image or None,
        source=str(source) if source is not None else None,
        page=page if isinstance(page, int) else None,
    )

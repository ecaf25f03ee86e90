"""Where adapter fields become encoders: one function per family, reading the family's fields.

Cheap: each resolves the model name and checks the options; no weights load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pagesight.integrations._fields import (
    ColEmbedFields,
    MatryoshkaFields,
    RerankFields,
    VLFields,
    option_values,
)

if TYPE_CHECKING:
    from pagesight.models.dense_text import MatryoshkaEncoder
    from pagesight.models.dense_vl import VLEncoder
    from pagesight.models.late_interaction import ColEmbedEncoder
    from pagesight.models.rerank import Reranker
    from pagesight.retrieval.multivector import MultiVectorStore
    from pagesight.retrieval.store import PageStore

__all__ = ["build_reranker", "colembed_encoder", "image_root", "matryoshka_encoder", "vl_encoder"]


def matryoshka_encoder(fields: MatryoshkaFields, *, batch_size: int) -> MatryoshkaEncoder:
    """The dense text encoder; ``query_prefix`` / ``document_prefix`` override the model's own prefixes
    when not ``None``, ``base_url`` is the Ollama host."""
    from pagesight.models.dense_text import MatryoshkaEncoder

    options = option_values(
        fields, MatryoshkaFields, leave_out=("query_prefix", "document_prefix", "base_url")
    )
    given = {"search_query": fields.query_prefix, "search_document": fields.document_prefix}
    prefixes = {task: prefix for task, prefix in given.items() if prefix is not None}
    return MatryoshkaEncoder(batch_size=batch_size, prefixes=prefixes, ollama_host=fields.base_url, **options)


def colembed_encoder(fields: ColEmbedFields, *, batch_size: int) -> ColEmbedEncoder:
    """The late-interaction encoder."""
    from pagesight.models.late_interaction import ColEmbedEncoder

    return ColEmbedEncoder(batch_size=batch_size, **option_values(fields, ColEmbedFields))


def vl_encoder(fields: VLFields, *, batch_size: int) -> VLEncoder:
    """The dense vision-language encoder."""
    from pagesight.models.dense_vl import VLEncoder

    return VLEncoder(batch_size=batch_size, **option_values(fields, VLFields))


def build_reranker(fields: RerankFields) -> Reranker:
    """The reranker (``top_n`` and ``store`` are the adapters' own)."""
    from pagesight.models.rerank import Reranker

    return Reranker(**option_values(fields, RerankFields, leave_out=("top_n", "store")))


def image_root(store: PageStore | MultiVectorStore | str | Path | None) -> Path | None:
    """The folder that relative ``metadata["image"]`` paths are relative to (``None``: as given).

    A folder path is read as an embedded store's folder, whose images live in ``<folder>/images``.
    """
    if store is None:
        return None
    if isinstance(store, (str, Path)):
        from pagesight.retrieval.store import default_image_dir

        return default_image_dir(store)  # opens nothing: only the default image folder is needed
    return store.image_dir

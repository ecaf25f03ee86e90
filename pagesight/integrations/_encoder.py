"""The one place where adapter fields become a :class:`MatryoshkaEncoder` (shared by both frameworks)."""

from __future__ import annotations

from typing import Any

from pagesight.models.matryoshka import MatryoshkaEncoder


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

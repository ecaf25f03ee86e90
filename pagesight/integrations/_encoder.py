"""Where adapter fields become encoders (shared by the LangChain and LlamaIndex adapters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pagesight.models.matryoshka import MatryoshkaEncoder

if TYPE_CHECKING:
    from pagesight.models.colembed import ColEmbedEncoder


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

"""Pages to and from LlamaIndex nodes: the one place the adapters and the query engine build them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import BaseNode, ImageNode, NodeWithScore, TextNode

from pagesight.integrations._convert import hit_metadata, metadata_hit, page_hit, rerank_candidate
from pagesight.types import Hit

if TYPE_CHECKING:
    from pagesight.models.rerank import RerankCandidate

__all__ = ["hit_node", "node_candidate", "node_hit", "own_node_hit", "with_hit"]


def hit_node(hit: Hit, metadata: dict[str, Any], hidden: Sequence[str]) -> TextNode:
    """The page as a node: an ``ImageNode`` (``image_path`` set) when it has an image, else a ``TextNode``.

    Node id = the page id; ``hidden`` metadata keys are kept from the LLM and the embedder.
    """
    common: dict[str, Any] = {
        "id_": hit.id,
        "text": hit.text,
        "metadata": metadata,
        "excluded_llm_metadata_keys": list(hidden),
        "excluded_embed_metadata_keys": list(hidden),
    }
    if hit.image is not None:
        return ImageNode(image_path=str(hit.image), **common)
    return TextNode(**common)


def with_hit(node: BaseNode, hit: Hit, hidden: Sequence[str]) -> BaseNode:
    """A copy of a retrieved node with the page's ``source/page/image/score/id`` in its metadata."""
    update = {
        "metadata": {**node.metadata, **hit_metadata(hit)},
        "excluded_llm_metadata_keys": sorted({*node.excluded_llm_metadata_keys, *hidden}),
        "excluded_embed_metadata_keys": sorted({*node.excluded_embed_metadata_keys, *hidden}),
    }
    return node.model_copy(update=update)


def node_hit(n: NodeWithScore, root: Path | None) -> Hit:
    """A retrieved node read as a page (the image from metadata or an ``ImageNode``'s path)."""
    node = n.node
    image = getattr(node, "image_path", None)
    return page_hit(
        node.get_content(), node.metadata, doc_id=node.node_id, score=n.score, image=image, root=root
    )


def own_node_hit(n: NodeWithScore) -> Hit:
    """A page back from a node built on :func:`~pagesight.integrations._convert.hit_metadata`."""
    return metadata_hit(n.node.get_content(), n.node.metadata, doc_id=n.node.node_id)


def node_candidate(n: NodeWithScore, root: Path | None) -> RerankCandidate:
    """What the reranker scores for a node: its content and its page image (relative to ``root``)."""
    node = n.node
    return rerank_candidate(node.get_content(), node.metadata, root, getattr(node, "image_path", None))

"""LlamaIndex ``BaseNodePostprocessor`` over :class:`~pagesight.models.rerank.Reranker`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field, PrivateAttr

from pagesight.integrations._encoder import build_reranker, image_root, rerank_candidate
from pagesight.models.rerank import RerankBackendName, Reranker
from pagesight.models.vl import PageInput
from pagesight.retrieval.multivector import MultiVectorStore
from pagesight.retrieval.store import PageStore

__all__ = ["VLRerankPostprocessor"]


class VLRerankPostprocessor(BaseNodePostprocessor):
    """Reranks retrieved nodes by looking at the query and each page's image and/or text, for LlamaIndex.

    Each node is scored against the query by a cross-encoder (NVIDIA rerank-vl sees the page
    image, its text or both; text cross-encoders and nanoranker see the text). The ``top_n`` best
    come back best first as **new** ``NodeWithScore`` objects whose ``score`` is the relevance
    (in ``[0, 1]``); the input nodes are never changed.

    A node's image is ``metadata["image"]``, else an ``ImageNode``'s ``image_path``: an absolute
    path, or one relative to ``store``'s image folder; the text is the node's content.

    Install:
        ``pip install "pagesight[llamaindex,gpu]"`` (llama-nemotron-rerank-vl-1b-v2, cross-encoders),
        ``[llamaindex,offline]`` for the bundled nanoranker (text only).

    Instantiate::

        from pagesight.integrations import VLRerankPostprocessor

        rerank = VLRerankPostprocessor(trust_remote_code=True, top_n=3)   # llama-nemotron-rerank-vl-1b-v2
        rerank = VLRerankPostprocessor(model="nanoranker", top_n=3)         # offline, text only

    Use::

        nodes = rerank.postprocess_nodes(retrieved, query_str="what is the invoice total?")
        nodes[0].score                                      # 0.93: best first, at most top_n nodes

        engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])

    Nothing loads in the constructor; the model loads on the first non-empty call.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)

    model: str = Field(
        default="llama-nemotron-rerank-vl-1b-v2",
        description="Alias ('llama-nemotron-rerank-vl-1b-v2', 'ms-marco-minilm-l6-v2', 'nanoranker'), "
        "Hub id or folder.",
    )
    backend: RerankBackendName = Field(
        default="auto", description="'nvidia', 'cross-encoder' or 'nanoranker'; 'auto' takes the model's own."
    )
    top_n: int = Field(default=5, ge=0, description="How many nodes to return (0: none, nothing loads).")
    device: str | None = Field(default=None, description="Torch device (None: CUDA when available).")
    dtype: str | None = Field(
        default=None, description="Weight dtype, e.g. 'bfloat16' (None: bf16 on CUDA, fp32 on CPU)."
    )
    batch_size: int = Field(default=8, ge=1, description="Query-node pairs per forward pass.")
    trust_remote_code: bool = Field(
        default=False, description="Allow code from the model's repository (the NVIDIA reranker needs it)."
    )
    revision: str | None = Field(default=None, description="Hub revision overriding the pinned one.")
    attn_implementation: str | None = Field(
        default=None, description="Attention kernel: 'flash_attention_2', 'sdpa', 'eager' (None: the best)."
    )
    page_input: PageInput = Field(
        default="auto", description="What of a page the model sees: 'image', 'text', 'image_text' or 'auto'."
    )
    max_length: int | None = Field(
        default=None, ge=1, description="Token limit per pair (None: 2048 with images, 8192 text only)."
    )
    show_progress: bool = Field(default=False, description="Show a progress bar while scoring.")
    store: PageStore | MultiVectorStore | str | Path | None = Field(
        default=None,
        description="Where relative image paths point: a store, or an embedded store's folder "
        "(images in <folder>/images); None takes paths as they are.",
    )

    _reranker: Reranker = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._reranker = build_reranker(self)

    @classmethod
    def class_name(cls) -> str:
        return "PagesightVLRerankPostprocessor"

    @property
    def reranker(self) -> Reranker:
        """The framework-free reranker doing the work."""
        return self._reranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError(
                "VLRerankPostprocessor needs a query to rerank against: pass query_str=... or "
                "query_bundle=... to postprocess_nodes"
            )
        if not nodes or self.top_n == 0:
            return []
        root = image_root(self.store)
        candidates = [
            rerank_candidate(n.node.get_content(), n.node.metadata, root, getattr(n.node, "image_path", None))
            for n in nodes
        ]
        results = self._reranker.rerank(query_bundle.query_str, candidates, top_n=self.top_n)
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in results]

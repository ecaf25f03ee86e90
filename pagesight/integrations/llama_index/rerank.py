"""LlamaIndex ``BaseNodePostprocessor`` over :class:`~pagesight.models.rerank.Reranker`."""

from __future__ import annotations

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from pydantic import ConfigDict

from pagesight.integrations._encoder import image_root
from pagesight.integrations._fields import RerankFields
from pagesight.integrations.llama_index._convert import node_candidate

__all__ = ["VLRerankPostprocessor"]


class VLRerankPostprocessor(RerankFields, BaseNodePostprocessor):
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

    @classmethod
    def class_name(cls) -> str:
        return "PagesightVLRerankPostprocessor"

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
        candidates = [node_candidate(n, root) for n in nodes]
        results = self.reranker.rerank(query_bundle.query_str, candidates, top_n=self.top_n)
        return [NodeWithScore(node=nodes[r.index].node, score=r.score) for r in results]

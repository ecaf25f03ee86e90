"""LlamaIndex ``MultiModalEmbedding`` over :class:`~pagesight.models.dense_vl.VLEncoder`."""

from __future__ import annotations

from typing import Any

from llama_index.core.schema import ImageType

from pagesight.integrations._fields import VL_MODEL, VLFields
from pagesight.integrations.llama_index._base import (
    DenseVectors,
    ThreadedMultiModalEmbedding,
    embedding_arguments,
)
from pagesight.integrations.llama_index.colembed import _image

__all__ = ["VLEmbedding"]


class VLEmbedding(VLFields, DenseVectors, ThreadedMultiModalEmbedding):
    """Dense vision-language embeddings: queries, texts and images in one vector space, for LlamaIndex.

    One unit-length vector per query, node text or image. Use it as both ``embed_model`` and
    ``image_embed_model`` of a ``MultiModalVectorStoreIndex`` so text queries find page images.

    Install:
        ``pip install "pagesight[llamaindex,gpu]"`` (llama-nemotron-embed-vl-1b-v2 and other Hub
        models), ``[llamaindex,st]`` for CLIP / SigLIP / nomic-embed-vision.

    Instantiate::

        from pagesight.integrations import VLEmbedding

        embed_model = VLEmbedding(trust_remote_code=True)        # llama-nemotron-embed-vl-1b-v2, 2048-d
        embed_model = VLEmbedding(model="clip-vit-b-32")          # CLIP ViT-B/32, 512-d

    Use::

        embed_model.get_query_embedding("invoice total")           # d floats, unit length
        embed_model.get_text_embedding("Invoice 42 ...")           # d floats
        embed_model.get_image_embedding("page-1.png")              # d floats (path or BytesIO)

        from llama_index.core.indices import MultiModalVectorStoreIndex
        index = MultiModalVectorStoreIndex(nodes, embed_model=embed_model, image_embed_model=embed_model)
        index.as_retriever(image_similarity_top_k=3).text_to_image_retrieve("invoice total")

    Licenses differ per model (``embed_model.encoder.spec.license``): NV-Embed-v2 is
    **non-commercial** (CC-BY-NC-4.0); read each model card before using it in a product.

    Nothing loads in the constructor; the model loads on the first call.
    """

    def __init__(self, model: str = VL_MODEL, **kwargs: Any) -> None:
        super().__init__(**embedding_arguments(model, kwargs, batch_size=8))

    @classmethod
    def class_name(cls) -> str:
        return "PagesightVLEmbedding"

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        vector: list[float] = self.encoder.encode_images([_image(img_file_path)])[0].tolist()
        return vector

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        images = [_image(p) for p in img_file_paths]
        vectors: list[list[float]] = self.encoder.encode_images(images).tolist() if images else []
        return vectors

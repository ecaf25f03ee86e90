"""LlamaIndex ``MultiModalEmbedding`` over :class:`~pagesight.models.vl.VLEncoder` (dense vision-language)."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType
from pydantic import Field, PrivateAttr

from pagesight.integrations._encoder import vl_encoder
from pagesight.integrations.llama_index.colembed import _image
from pagesight.models.vl import PageInput, VLBackendName, VLEncoder

__all__ = ["VLEmbedding"]

_DEFAULT_MODEL = "llama-nemotron-embed-vl-1b-v2"


class VLEmbedding(MultiModalEmbedding):
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

    model: str = Field(
        default=_DEFAULT_MODEL,
        description="Alias ('llama-nemotron-embed-vl-1b-v2', 'clip-vit-b-32', ...), Hub id or folder.",
    )
    backend: VLBackendName = Field(
        default="auto",
        description="'nvidia', 'sentence-transformers', 'nv-embed' or 'e5-v'; 'auto' takes the model's own.",
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Length of the returned vectors; None keeps the native size."
    )
    device: str | None = Field(default=None, description="Torch device (None: CUDA when available).")
    dtype: str | None = Field(
        default=None, description="Weight dtype, e.g. 'bfloat16' (None: bf16 on CUDA, fp32 on CPU)."
    )
    trust_remote_code: bool = Field(
        default=False, description="Allow code from the model's repository (the NVIDIA models need it)."
    )
    revision: str | None = Field(default=None, description="Hub revision overriding the pinned one.")
    attn_implementation: str | None = Field(
        default=None, description="Attention kernel: 'flash_attention_2', 'sdpa', 'eager' (None: the best)."
    )
    page_input: PageInput = Field(
        default="auto", description="What of a page the model sees: 'image', 'text', 'image_text' or 'auto'."
    )
    text_model: str | None = Field(
        default=None, description="Text tower for queries and texts (nomic-embed-vision: nomic-embed-text)."
    )
    task: str | None = Field(default=None, description="NV-Embed-v2's query instruction (None: retrieval).")
    show_progress: bool = Field(default=False, description="Show a progress bar while embedding.")

    _encoder: VLEncoder = PrivateAttr()

    def __init__(self, model: str = _DEFAULT_MODEL, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", model)
        kwargs.setdefault("embed_batch_size", kwargs.pop("batch_size", 8))
        kwargs["model"] = model
        super().__init__(**kwargs)
        self._encoder = vl_encoder(self, batch_size=self.embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "PagesightVLEmbedding"

    @property
    def encoder(self) -> VLEncoder:
        """The framework-free encoder doing the work."""
        return self._encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        vector: list[float] = self._encoder.encode_queries([query])[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> list[float]:
        vector: list[float] = self._encoder.encode_documents([text])[0].tolist()
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._encoder.encode_documents(texts).tolist() if texts else []
        return vectors

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        vector: list[float] = self._encoder.encode_images([_image(img_file_path)])[0].tolist()
        return vector

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        images = [_image(p) for p in img_file_paths]
        vectors: list[list[float]] = self._encoder.encode_images(images).tolist() if images else []
        return vectors

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)

"""LangChain ``Embeddings`` over :class:`~pagesight.models.vl.VLEncoder` (dense vision-language)."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from pagesight.integrations._encoder import vl_encoder
from pagesight.models.vl import PageInput, VLBackendName, VLEncoder

__all__ = ["VLEmbeddings"]


class VLEmbeddings(BaseModel, Embeddings):
    """Dense vision-language embeddings: queries, texts and page images in one vector space, for LangChain.

    One unit-length vector per query, text or image, so any LangChain vector store can hold
    them and a text query finds page images. ``embed_image`` is what
    ``langchain_chroma.Chroma.add_images`` calls.

    Install:
        .. code-block:: bash

            pip install "pagesight[langchain,gpu]"   # llama-nemotron-embed-vl-1b-v2 and other Hub models
            pip install "pagesight[langchain,st]"    # CLIP, SigLIP, nomic-embed-vision

    Instantiate:
        .. code-block:: python

            from pagesight.integrations import VLEmbeddings

            emb = VLEmbeddings(trust_remote_code=True)     # llama-nemotron-embed-vl-1b-v2, 2048-d
            emb = VLEmbeddings(model="clip-vit-b-32")      # CLIP ViT-B/32, 512-d

    Use:
        .. code-block:: python

            emb.embed_query("what is the invoice total?")             # d floats, unit length
            emb.embed_documents(["Invoice 42", "Total: 1,250 EUR"])   # 2 lists of d floats
            emb.embed_image(["page-1.png", "page-2.png"])             # 2 lists of d floats

            from langchain_chroma import Chroma
            db = Chroma(collection_name="pages", embedding_function=emb, persist_directory="db/")
            db.add_images(["page-1.png", "page-2.png"])
            db.similarity_search("invoice total", k=1)                # the best page image
            # d = dimensions, or the model's native size

    Licenses differ per model (``VLEncoder(...).spec.license``): NV-Embed-v2 is
    **non-commercial** (CC-BY-NC-4.0); read each model card before using it in a product.

    Nothing loads in the constructor; the model loads on the first call.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = "llama-nemotron-embed-vl-1b-v2"
    """Alias (``llama-nemotron-embed-vl-1b-v2``, ``clip-vit-b-32``, ``siglip-base-patch16-224``,
    ``nomic-embed-vision-v1.5``, ``nv-embed-v2``, ``e5-v``), Hugging Face id or local folder."""

    backend: VLBackendName = "auto"
    """Which runtime serves the model (``nvidia``, ``sentence-transformers``, ``nv-embed``, ``e5-v``);
    ``auto`` takes the model's own."""

    dimensions: int | None = Field(default=None, ge=1)
    """Length of the returned vectors (Matryoshka truncation, where the model was trained for it);
    ``None`` keeps the native size."""

    device: str | None = None
    """Torch device (``None``: CUDA when available, else CPU)."""

    dtype: str | None = None
    """Weight dtype such as ``"bfloat16"`` or ``"float32"`` (``None``: bf16 on CUDA, fp32 on CPU)."""

    batch_size: int = Field(default=8, ge=1)
    """Texts or images per forward pass."""

    trust_remote_code: bool = False
    """Allow running code from the model's repository (the NVIDIA models need it)."""

    revision: str | None = None
    """Hub revision overriding the registry's pinned one."""

    attn_implementation: str | None = None
    """Attention kernel (``"flash_attention_2"``, ``"sdpa"``, ``"eager"``; ``None``: the best available)."""

    page_input: PageInput = "auto"
    """What of a page the model sees when pages are embedded (``encoder.encode_pages``): ``image``,
    ``text`` or ``image_text``; ``auto`` takes both when the model can and the page has text."""

    text_model: str | None = None
    """Model for queries and texts when the image model has a separate text tower
    (nomic-embed-vision-v1.5 pairs with nomic-embed-text-v1.5; ``None``: the model's own)."""

    task: str | None = None
    """NV-Embed-v2's query instruction (``None``: its retrieval task)."""

    show_progress: bool = False
    """Show a progress bar while embedding."""

    _encoder: VLEncoder = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._encoder = vl_encoder(self, batch_size=self.batch_size)

    @property
    def encoder(self) -> VLEncoder:
        """The framework-free encoder doing the work."""
        return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed text documents: one list of ``dimensions`` floats per text, unit length."""
        vectors: list[list[float]] = self._encoder.encode_documents(texts).tolist() if texts else []
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query: ``dimensions`` floats, unit length."""
        vector: list[float] = self._encoder.encode_queries([text])[0].tolist()
        return vector

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image files: one list of ``dimensions`` floats per path, unit length."""
        vectors: list[list[float]] = self._encoder.encode_images(uris).tolist() if uris else []
        return vectors

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_query, text)

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_image, uris)

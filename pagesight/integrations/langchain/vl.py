"""LangChain ``Embeddings`` over :class:`~pagesight.models.dense_vl.VLEncoder` (dense vision-language)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from pagesight.integrations._fields import VLFields
from pagesight.integrations.langchain._base import ThreadedImageEmbeddings

__all__ = ["VLEmbeddings"]


class VLEmbeddings(VLFields, ThreadedImageEmbeddings):
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

    batch_size: int = Field(default=8, ge=1)
    """Texts or images per forward pass."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed text documents: one list of ``dimensions`` floats per text, unit length."""
        vectors: list[list[float]] = self.encoder.encode_documents(texts).tolist() if texts else []
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query: ``dimensions`` floats, unit length."""
        vector: list[float] = self.encoder.encode_queries([text])[0].tolist()
        return vector

    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image files: one list of ``dimensions`` floats per path, unit length."""
        vectors: list[list[float]] = self.encoder.encode_images(uris).tolist() if uris else []
        return vectors

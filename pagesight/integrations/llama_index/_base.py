"""What pagesight's LlamaIndex embeddings share: constructor arguments and async methods run in a thread."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.embeddings.multi_modal_base import MultiModalEmbedding
from llama_index.core.schema import ImageType

__all__ = ["DenseVectors", "ThreadedEmbedding", "ThreadedMultiModalEmbedding", "embedding_arguments"]


def embedding_arguments(model: str, kwargs: dict[str, Any], *, batch_size: int) -> dict[str, Any]:
    """LlamaIndex's own fields from pagesight's: ``model_name`` is the model, ``embed_batch_size`` is
    ``batch_size`` (``batch_size`` by default)."""
    kwargs.setdefault("model_name", model)
    kwargs.setdefault("embed_batch_size", kwargs.pop("batch_size", batch_size))
    kwargs["model"] = model
    return kwargs


class ThreadedEmbedding(BaseEmbedding):
    """A text embedding whose async methods run the sync ones in a worker thread (the loop stays free)."""

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class ThreadedMultiModalEmbedding(MultiModalEmbedding, ThreadedEmbedding):
    """A text and image embedding whose async methods run the sync ones in a worker thread."""

    async def _aget_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return await asyncio.to_thread(self._get_image_embedding, img_file_path)

    async def _aget_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_image_embeddings, img_file_paths)


class DenseVectors:
    """LlamaIndex's text methods over a dense pagesight encoder (``self.encoder``): one unit-length
    vector per query or text, queries and documents through the model's own paths."""

    @property
    def encoder(self) -> Any:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        vector: list[float] = self.encoder.encode_queries([query])[0].tolist()
        return vector

    def _get_text_embedding(self, text: str) -> list[float]:
        vector: list[float] = self.encoder.encode_documents([text])[0].tolist()
        return vector

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.encoder.encode_documents(texts).tolist() if texts else []
        return vectors

"""What pagesight's LangChain embeddings share: async methods that run the sync ones in a thread."""

from __future__ import annotations

import asyncio
from abc import abstractmethod

from langchain_core.embeddings import Embeddings

__all__ = ["ThreadedEmbeddings", "ThreadedImageEmbeddings"]


class ThreadedEmbeddings(Embeddings):
    """Embeddings whose async methods run the sync ones in a worker thread (the loop stays free)."""

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_query, text)


class ThreadedImageEmbeddings(ThreadedEmbeddings):
    """Embeddings of texts and image files (``embed_image`` is what ``Chroma.add_images`` calls)."""

    @abstractmethod
    def embed_image(self, uris: list[str]) -> list[list[float]]:
        """Embed image files: one vector per path."""

    async def aembed_image(self, uris: list[str]) -> list[list[float]]:
        """Async :meth:`embed_image`, run in a worker thread so the event loop stays free."""
        return await asyncio.to_thread(self.embed_image, uris)

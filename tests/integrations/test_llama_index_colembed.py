"""ColEmbedEmbedding: pooled vectors through LlamaIndex's interface, token matrices beside them."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

from pagesight.errors import PagesightError
from pagesight.integrations import ColEmbedEmbedding
from pagesight.retrieval.pooling import mean_summary


@pytest.fixture(scope="module")
def embed_model() -> ColEmbedEmbedding:
    return ColEmbedEmbedding(device="cpu")


def png(path: Path, colour: str = "white") -> Path:
    from PIL import Image

    Image.new("RGB", (32, 24), colour).save(path)
    return path


def test_fields_and_class_name() -> None:
    from pagesight.integrations.llama_index import ColEmbedEmbedding as direct

    embed_model = ColEmbedEmbedding(model="minilm-tokens", batch_size=4)
    assert direct is ColEmbedEmbedding
    assert embed_model.model_name == "minilm-tokens" and embed_model.embed_batch_size == 4
    assert ColEmbedEmbedding().embed_batch_size == 8
    assert ColEmbedEmbedding.class_name() == "PagesightColEmbedEmbedding"


def test_pooled_vectors_are_the_mean_summary(embed_model: ColEmbedEmbedding) -> None:
    texts = ["Invoice 42: the total is 1,250 euros.", "Heavy snow in the mountains."]
    pooled = np.array(embed_model.get_text_embedding_batch(texts))
    assert pooled.shape == (2, 384)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    for text, vector in zip(texts, pooled, strict=True):
        matrix = np.array(embed_model.get_text_multivector(text), dtype=np.float32)
        assert np.allclose(vector, mean_summary(matrix), atol=1e-5)
        assert np.allclose(embed_model.get_text_embedding(text), vector, atol=1e-5)
    query = embed_model.get_query_embedding("how much is due?")
    q_matrix = np.array(embed_model.get_query_multivector("how much is due?"), dtype=np.float32)
    assert np.allclose(query, mean_summary(q_matrix), atol=1e-5)


def test_token_matrices_have_unit_rows(embed_model: ColEmbedEmbedding) -> None:
    short = np.array(embed_model.get_text_multivector("snow"))
    long = np.array(embed_model.get_text_multivector("heavy snow is expected in the mountains tonight"))
    assert short.ndim == long.ndim == 2 and short.shape[1] == long.shape[1] == 384
    assert long.shape[0] > short.shape[0]
    assert np.allclose(np.linalg.norm(long, axis=1), 1.0, atol=1e-5)


def test_pooled_vectors_in_a_vector_store_index(embed_model: ColEmbedEmbedding) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    nodes = [
        TextNode(text="The invoice total is 1,250 euros, due in thirty days.", id_="invoice"),
        TextNode(text="Photosynthesis turns sunlight into chemical energy.", id_="plants"),
        TextNode(text="The match ended in a two-all draw.", id_="football"),
    ]
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    hits = index.as_retriever(similarity_top_k=1).retrieve("photosynthesis and sunlight")
    assert hits[0].node.node_id == "plants"


def test_images_with_a_text_only_model_say_so(embed_model: ColEmbedEmbedding, tmp_path: Path) -> None:
    image = png(tmp_path / "page.png")
    with pytest.raises(PagesightError, match="(?i)image"):
        embed_model.get_image_embedding(str(image))
    with pytest.raises(PagesightError, match="(?i)image"):
        embed_model.get_image_multivector(str(image))


def test_images_with_an_image_model(standin: Path, tmp_path: Path) -> None:
    embed_model = ColEmbedEmbedding(model=str(standin), device="cpu", trust_remote_code=True)
    white, black = png(tmp_path / "white.png"), png(tmp_path / "black.png", "black")
    buffer = BytesIO(white.read_bytes())
    from_path = np.array(embed_model.get_image_embedding(str(white)))
    from_bytes = np.array(embed_model.get_image_embedding(buffer))
    assert buffer.tell() == 0  # the caller's buffer is left as it was
    assert np.allclose(from_path, from_bytes, atol=1e-4)
    batch = np.array(embed_model.get_image_embedding_batch([str(white), str(black)]))
    assert batch.shape == (2, embed_model.encoder.dimensions)
    matrix = np.array(embed_model.get_image_multivector(str(black)), dtype=np.float32)
    assert np.allclose(batch[1], mean_summary(matrix), atol=1e-4)


async def test_async_embeddings(embed_model: ColEmbedEmbedding) -> None:
    query = await embed_model.aget_query_embedding("question")
    texts = await embed_model.aget_text_embedding_batch(["a", "b", "c"])
    assert len(query) == 384 and len(texts) == 3
    assert np.allclose(query, embed_model.get_query_embedding("question"), atol=1e-5)

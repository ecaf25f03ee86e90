"""VLEmbedding: the MultiModalEmbedding interface and a MultiModalVectorStoreIndex of texts and images."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Settings
from llama_index.core.schema import ImageNode, TextNode

from pagesight.integrations import VLEmbedding

TEXTS = {
    "invoice": "Invoice 42: the total amount due is 1,250 euros.",
    "plants": "Photosynthesis turns sunlight into sugar.",
    "snow": "Heavy snow is expected in the mountains.",
}
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 230)}


@pytest.fixture(scope="module")
def embed_model(tiny_clip: Path) -> VLEmbedding:
    return VLEmbedding(str(tiny_clip), device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("li-images")
    paths = {}
    for name, colour in COLOURS.items():
        paths[name] = folder / f"{name}.png"
        Image.new("RGB", (40, 48), colour).save(paths[name])
    stripes = np.zeros((48, 40, 3), dtype=np.uint8)
    stripes[::6] = 255
    paths["stripes"] = folder / "stripes.png"
    Image.fromarray(stripes).save(paths["stripes"])
    return paths


@pytest.fixture
def no_default_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave LlamaIndex's default models unresolved, and check they still are after the test (no OpenAI)."""
    monkeypatch.setattr(Settings, "_llm", None)
    monkeypatch.setattr(Settings, "_embed_model", None)
    yield
    assert Settings._llm is None and Settings._embed_model is None


def test_fields_and_class_name(tiny_clip: Path) -> None:
    from pagesight.integrations.llama_index import VLEmbedding as direct

    embed_model = VLEmbedding(str(tiny_clip), batch_size=4, dimensions=None)
    assert direct is VLEmbedding
    assert embed_model.model_name == str(tiny_clip) and embed_model.embed_batch_size == 4
    assert embed_model.encoder.batch_size == 4
    default = VLEmbedding(trust_remote_code=True)  # the 1B NVIDIA model: nothing loads
    assert default.model == "llama-nemotron-embed-vl-1b-v2" and default.embed_batch_size == 8
    assert VLEmbedding.class_name() == "PagesightVLEmbedding"


def test_vectors_are_the_encoders(embed_model: VLEmbedding, images: dict[str, Path]) -> None:
    encoder = embed_model.encoder
    texts = list(TEXTS.values())
    batch = np.array(embed_model.get_text_embedding_batch(texts))
    assert batch.shape == (3, encoder.dimensions)
    assert np.allclose(batch, encoder.encode_documents(texts), atol=1e-6)
    assert np.allclose(embed_model.get_text_embedding(texts[0]), batch[0], atol=1e-5)
    query = np.array(embed_model.get_query_embedding("invoice total"))
    assert np.allclose(query, encoder.encode_queries(["invoice total"])[0], atol=1e-6)
    paths = [str(p) for p in images.values()]
    image_batch = np.array(embed_model.get_image_embedding_batch(paths))
    assert image_batch.shape == (4, len(query))
    assert np.allclose(image_batch, encoder.encode_images(paths), atol=1e-6)
    assert np.allclose(np.linalg.norm(image_batch, axis=1), 1.0, atol=1e-5)


def test_queries_and_texts_take_their_own_paths(standin_embed_vl: Path, images: dict[str, Path]) -> None:
    embed_model = VLEmbedding(str(standin_embed_vl), trust_remote_code=True, device="cpu")
    text = "invoice total"
    query, node = (
        np.array(embed_model.get_query_embedding(text)),
        np.array(embed_model.get_text_embedding(text)),
    )
    assert np.allclose(query, embed_model.encoder.encode_queries([text])[0], atol=1e-6)
    assert np.allclose(node, embed_model.encoder.encode_documents([text])[0], atol=1e-6)
    assert not np.allclose(query, node, atol=1e-3)  # "query: " vs "passage: " reached the model
    image = np.array(embed_model.get_image_embedding(str(images["red"])))
    assert image.shape == query.shape and np.isclose(np.linalg.norm(image), 1.0, atol=1e-5)


def test_image_from_bytes_matches_path(embed_model: VLEmbedding, images: dict[str, Path]) -> None:
    buffer = BytesIO(images["stripes"].read_bytes())
    from_bytes = embed_model.get_image_embedding(buffer)
    assert buffer.tell() == 0  # the caller's buffer is left as it was
    assert np.allclose(from_bytes, embed_model.get_image_embedding(str(images["stripes"])), atol=1e-5)


def test_multimodal_vector_store_index(
    embed_model: VLEmbedding, images: dict[str, Path], no_default_models: None
) -> None:
    from llama_index.core.indices import MultiModalVectorStoreIndex

    text_nodes = [TextNode(text=text, id_=name) for name, text in TEXTS.items()]
    # an ImageNode needs some text: VectorStoreIndex skips nodes without content
    image_nodes = [
        ImageNode(image_path=str(path), text=f"{name} page", id_=f"img-{name}")
        for name, path in images.items()
    ]
    index = MultiModalVectorStoreIndex(
        text_nodes + image_nodes,
        embed_model=embed_model,
        image_embed_model=VLEmbedding(embed_model.model, device="cpu"),
    )
    n = len(images)
    retriever = index.as_retriever(similarity_top_k=len(TEXTS), image_similarity_top_k=n)

    # image -> image: the query image's own node comes first (cosine 1)
    for name, path in images.items():
        results = retriever.image_to_image_retrieve(str(path))
        assert results[0].node.node_id == f"img-{name}"
        assert len(results) == n and all(isinstance(r.node, ImageNode) for r in results)

    # text -> image: the order cosine similarity gives, computed here from the raw vectors
    query = "a red page"
    q = np.array(embed_model.get_query_embedding(query))
    image_vectors = embed_model.encoder.encode_images([str(images[name]) for name in images])
    expected = [f"img-{name}" for name in np.array(list(images))[np.argsort(-(image_vectors @ q))]]
    results = retriever.text_to_image_retrieve(query)
    assert [r.node.node_id for r in results] == expected
    assert np.allclose([r.score for r in results], np.sort(image_vectors @ q)[::-1], atol=1e-4)

    # text -> text: every node with text (the image nodes' text too), ranked by cosine of their texts
    nodes = {node.node_id: node.get_content() for node in text_nodes + image_nodes}
    text_vectors = embed_model.encoder.encode_documents(list(nodes.values()))
    q_invoice = embed_model.encoder.encode_queries([TEXTS["invoice"]])[0]
    expected = [list(nodes)[i] for i in np.argsort(-(text_vectors @ q_invoice))[: len(TEXTS)]]
    text_results = retriever.text_retrieve(TEXTS["invoice"])
    assert [r.node.node_id for r in text_results] == expected


async def test_async_matches_sync(
    embed_model: VLEmbedding, images: dict[str, Path], no_default_models: None
) -> None:
    from llama_index.core.indices import MultiModalVectorStoreIndex

    path = str(images["blue"])
    assert np.allclose(await embed_model.aget_image_embedding(path), embed_model.get_image_embedding(path))
    assert np.allclose(
        await embed_model.aget_query_embedding("snow"), embed_model.get_query_embedding("snow"), atol=1e-6
    )
    texts = list(TEXTS.values())
    assert np.allclose(
        await embed_model.aget_text_embedding_batch(texts), embed_model.get_text_embedding_batch(texts)
    )

    nodes = [ImageNode(image_path=str(p), text=f"{name} page", id_=name) for name, p in images.items()]
    index = MultiModalVectorStoreIndex(nodes, embed_model=embed_model, image_embed_model=embed_model)
    retriever = index.as_retriever(image_similarity_top_k=len(nodes))
    sync = retriever.image_to_image_retrieve(path)
    async_ = await retriever.aimage_to_image_retrieve(path)
    assert [r.node.node_id for r in async_] == [r.node.node_id for r in sync]
    assert async_[0].node.node_id == "blue"
    assert np.allclose([r.score for r in async_], [r.score for r in sync], atol=1e-5)

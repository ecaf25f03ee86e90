"""VLEmbeddings: LangChain's standard embeddings suites, images beside texts, and Chroma's add_images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from pagesight.integrations import VLEmbeddings

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 230), "stripes": None}


def make_images(folder: Path) -> dict[str, Path]:
    """Small, visibly different PNGs: three plain colours and a black-and-white stripe pattern."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, colour in COLOURS.items():
        if colour is None:
            stripes = np.zeros((40, 48, 3), dtype=np.uint8)
            stripes[:, ::8] = 255
            image = Image.fromarray(stripes)
        else:
            image = Image.new("RGB", (48, 40), colour)
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def emb(tiny_clip: Path) -> VLEmbeddings:
    return VLEmbeddings(model=str(tiny_clip), device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_images(tmp_path_factory.mktemp("images"))


class _ClipParams:
    clip: Path

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _clip(cls, tiny_clip: Path) -> None:
        cls.clip = tiny_clip

    @property
    def embeddings_class(self) -> type[VLEmbeddings]:
        return VLEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": str(self.clip), "device": "cpu"}


class TestVLEmbeddingsUnit(_ClipParams, EmbeddingsUnitTests):
    pass


class TestVLEmbeddingsIntegration(_ClipParams, EmbeddingsIntegrationTests):
    pass


def test_lazy_export_and_cheap_constructor() -> None:
    from pagesight.integrations.langchain.vl import VLEmbeddings as direct

    assert VLEmbeddings is direct
    start = time.perf_counter()
    emb = VLEmbeddings(trust_remote_code=True, batch_size=2)  # the 1B NVIDIA model: nothing loads
    assert time.perf_counter() - start < 1.0
    assert emb.model == "llama-nemotron-embed-vl-1b-v2"
    assert emb.encoder.model == "llama-nemotron-embed-vl-1b-v2" and emb.encoder.batch_size == 2


def test_fields_are_checked() -> None:
    with pytest.raises(ValidationError):
        VLEmbeddings(modle="clip-vit-b-32")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        VLEmbeddings(model="clip-vit-b-32", batch_size=0)
    with pytest.raises(ValidationError):
        VLEmbeddings(model="clip-vit-b-32", dimensions=0)
    with pytest.raises(ValidationError, match="backend"):
        VLEmbeddings(model="clip-vit-b-32", backend="ollama")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="page_input"):
        VLEmbeddings(model="clip-vit-b-32", page_input="pixels")  # type: ignore[arg-type]


def test_images_and_texts_share_one_space(emb: VLEmbeddings, images: dict[str, Path]) -> None:
    uris = [str(p) for p in images.values()]
    vectors = np.array(emb.embed_image(uris))
    query = np.array(emb.embed_query("a red page"))
    texts = np.array(emb.embed_documents(["a red page", "a striped page"]))
    assert vectors.shape == (len(uris), len(query)) == (4, emb.encoder.dimensions)
    assert texts.shape == (2, len(query))
    for array in (vectors, texts, query[None]):
        assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    # the adapter is a thin layer: exactly the encoder's vectors
    assert np.allclose(vectors, emb.encoder.encode_images(uris), atol=1e-6)
    assert np.allclose(texts, emb.encoder.encode_documents(["a red page", "a striped page"]), atol=1e-6)
    assert np.allclose(query, emb.encoder.encode_queries(["a red page"])[0], atol=1e-6)
    # different images give different vectors, the same image the same one
    gram = vectors @ vectors.T
    assert np.all(gram[~np.eye(4, dtype=bool)] < 1 - 1e-4)
    assert np.allclose(emb.embed_image([uris[2]])[0], vectors[2], atol=1e-5)
    assert all(isinstance(x, float) for x in emb.embed_image(uris[:1])[0])
    assert emb.embed_image([]) == [] and emb.embed_documents([]) == []


def test_queries_and_documents_take_their_own_paths(standin_embed_vl: Path, images: dict[str, Path]) -> None:
    emb = VLEmbeddings(model=str(standin_embed_vl), trust_remote_code=True, device="cpu")
    text = "invoice total"
    query, document = np.array(emb.embed_query(text)), np.array(emb.embed_documents([text])[0])
    assert np.allclose(query, emb.encoder.encode_queries([text])[0], atol=1e-6)
    assert np.allclose(document, emb.encoder.encode_documents([text])[0], atol=1e-6)
    assert not np.allclose(query, document, atol=1e-3)  # "query: " vs "passage: " reached the model
    image = np.array(emb.embed_image([str(images["red"])]))
    assert image.shape == (1, len(query)) and np.isclose(np.linalg.norm(image), 1.0, atol=1e-5)


def test_chroma_add_images_and_search_by_image(
    emb: VLEmbeddings, images: dict[str, Path], tmp_path: Path
) -> None:
    from langchain_chroma import Chroma

    db = Chroma(collection_name="pages", embedding_function=emb, persist_directory=str(tmp_path / "db"))
    names = list(images)
    ids = db.add_images([str(images[n]) for n in names], metadatas=[{"name": n} for n in names])
    assert len(ids) == len(names)
    stored = db.get(ids=ids, include=["embeddings", "metadatas"])
    by_id = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    expected = emb.embed_image([str(images[n]) for n in names])
    for id_, vector in zip(ids, expected, strict=True):
        assert np.allclose(by_id[id_], vector, atol=1e-5)
    for name in names:
        query = emb.embed_image([str(images[name])])[0]
        hits = db.similarity_search_by_vector(query, k=len(names))
        assert hits[0].metadata["name"] == name
        assert len(hits) == len(names)
    # a text query lands in the same collection and space
    assert len(db.similarity_search("a red page", k=2)) == 2


async def test_async_matches_sync(emb: VLEmbeddings, images: dict[str, Path]) -> None:
    uris = [str(p) for p in images.values()]
    assert np.allclose(await emb.aembed_image(uris), emb.embed_image(uris), atol=1e-6)
    assert np.allclose(await emb.aembed_query("red"), emb.embed_query("red"), atol=1e-6)
    docs = ["red page", "blue page", "stripes"]
    assert np.allclose(await emb.aembed_documents(docs), emb.embed_documents(docs), atol=1e-6)

"""ColEmbedEmbeddings: LangChain's standard embeddings suites (pooled vectors) plus token-matrix checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from pagesight.errors import ModelNotAvailableError, PagesightError
from pagesight.integrations import ColEmbedEmbeddings
from pagesight.retrieval.pooling import mean_summary

PARAMS = {"model": "minilm-tokens", "device": "cpu"}


class TestColEmbedEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[ColEmbedEmbeddings]:
        return ColEmbedEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(PARAMS)


class TestColEmbedEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[ColEmbedEmbeddings]:
        return ColEmbedEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return dict(PARAMS)


@pytest.fixture(scope="module")
def emb() -> ColEmbedEmbeddings:
    return ColEmbedEmbeddings(**PARAMS)  # type: ignore[arg-type]


def minilm_token_count(text: str) -> int:
    """Tokens MiniLM's own tokenizer gives ``text``; the encoder drops [CLS] and [SEP]."""
    from transformers import AutoTokenizer

    from pagesight.models.registry import resolve

    spec = resolve("all-minilm-l6-v2")
    assert spec.local_path is not None
    tokenizer = AutoTokenizer.from_pretrained(str(spec.local_path()))
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_lazy_export_and_cheap_constructor() -> None:
    from pagesight.integrations.langchain import ColEmbedEmbeddings as direct

    assert ColEmbedEmbeddings is direct
    emb = ColEmbedEmbeddings(model="minilm-tokens", batch_size=2)
    assert emb.encoder is not None and emb.batch_size == 2


def test_fields_are_checked() -> None:
    with pytest.raises(ValidationError):
        ColEmbedEmbeddings(modle="minilm-tokens")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ColEmbedEmbeddings(batch_size=0)
    with pytest.raises(ValidationError, match="backend"):
        ColEmbedEmbeddings(backend="ollama")  # type: ignore[arg-type]
    with pytest.raises(ModelNotAvailableError, match="no-such-model"):
        ColEmbedEmbeddings(model="no-such-model")


def test_multivector_methods_return_unit_token_rows(emb: ColEmbedEmbeddings) -> None:
    texts = ["Invoice 42: the total is 1,250 euros.", "Snow in the mountains."]
    matrices = emb.embed_documents_multivector(texts)
    assert len(matrices) == 2
    for text, matrix in zip(texts, matrices, strict=True):
        array = np.array(matrix)
        assert array.shape == (minilm_token_count(text), 384)
        assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
        assert all(isinstance(x, float) for x in matrix[0])
    query = np.array(emb.embed_query_multivector("how much is due?"))
    assert query.ndim == 2 and query.shape[1] == 384 and query.shape[0] >= 3
    assert np.allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
    assert emb.embed_documents_multivector([]) == []


def test_pooled_vectors_are_the_mean_summary_of_the_tokens(emb: ColEmbedEmbeddings) -> None:
    texts = ["Photosynthesis turns sunlight into sugar.", "The cup final ended in a draw."]
    pooled = np.array(emb.embed_documents(texts))
    matrices = [np.array(m, dtype=np.float32) for m in emb.embed_documents_multivector(texts)]
    assert pooled.shape == (2, 384)
    assert np.allclose(pooled, np.stack([mean_summary(m) for m in matrices]), atol=1e-5)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    query = np.array(emb.embed_query("sunlight and sugar"))
    assert np.allclose(
        query, mean_summary(np.array(emb.embed_query_multivector("sunlight and sugar"))), atol=1e-5
    )
    assert emb.embed_documents([]) == []


def test_inputs_are_not_mutated(emb: ColEmbedEmbeddings) -> None:
    texts = ["alpha beta", "gamma"]
    before = list(texts)
    emb.embed_documents(texts)
    emb.embed_documents_multivector(texts)
    assert texts == before


def test_pooled_vectors_work_in_a_langchain_vector_store(emb: ColEmbedEmbeddings) -> None:
    store = InMemoryVectorStore(emb)
    store.add_documents(
        [
            Document(
                page_content="The invoice total is 1,250 euros, due in thirty days.", metadata={"page": 1}
            ),
            Document(
                page_content="Photosynthesis turns sunlight into chemical energy.", metadata={"page": 2}
            ),
            Document(page_content="The match ended in a two-all draw.", metadata={"page": 3}),
        ]
    )
    assert store.similarity_search("photosynthesis and sunlight", k=1)[0].metadata["page"] == 2


def test_embed_image_with_a_text_only_model_says_so(emb: ColEmbedEmbeddings, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "page.png"
    Image.new("RGB", (16, 16), "white").save(image)
    with pytest.raises(PagesightError, match="(?i)image"):
        emb.embed_image([str(image)])
    with pytest.raises(PagesightError, match="(?i)image"):
        emb.embed_image_multivector([str(image)])
    assert emb.embed_image([]) == []


def test_embed_image_with_an_image_model(standin: Path, tmp_path: Path) -> None:
    from PIL import Image

    paths = []
    for i, colour in enumerate(["white", "black"]):
        paths.append(tmp_path / f"page-{i}.png")
        Image.new("RGB", (32, 24), colour).save(paths[-1])
    emb = ColEmbedEmbeddings(model=str(standin), device="cpu", trust_remote_code=True)
    pooled = np.array(emb.embed_image([str(p) for p in paths]))
    matrices = emb.embed_image_multivector([str(p) for p in paths])
    assert pooled.shape == (2, emb.encoder.dimensions)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-4)
    for vector, matrix in zip(pooled, matrices, strict=True):
        array = np.array(matrix, dtype=np.float32)
        assert array.ndim == 2 and array.shape[1] == emb.encoder.dimensions
        assert np.allclose(vector, mean_summary(array), atol=1e-4)


async def test_async_variants_match_and_do_not_block(emb: ColEmbedEmbeddings) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    texts = ["a long enough sentence to take some time " * 20] * 8
    pooled = await emb.aembed_documents(texts)
    matrices = await emb.aembed_documents_multivector(texts[:1])
    query = await emb.aembed_query("question")
    query_matrix = await emb.aembed_query_multivector("question")
    done.set()
    await task
    assert len(pooled) == 8 and len(query) == 384
    assert np.allclose(matrices[0], emb.embed_documents_multivector(texts[:1])[0], atol=1e-5)
    assert np.allclose(query_matrix, emb.embed_query_multivector("question"), atol=1e-5)
    assert ticks > 1  # the loop kept running while the model worked in a thread

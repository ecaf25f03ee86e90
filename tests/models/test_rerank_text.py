"""Reranker's text backends: a tiny sentence-transformers CrossEncoder and the real nanoranker weights."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models.rerank import RerankCandidate, Reranker

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_rerank_vl"))

from rerank_builders import build_tiny_cross_encoder  # noqa: E402

PASSAGES = [
    "Mount Everest is the highest mountain on Earth, rising 8,849 metres above sea level in the Himalayas.",
    "The Pacific Ocean is the largest and deepest of the world's oceans.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Paris is the capital and largest city of France.",
    "The Great Wall of China was built over many centuries to protect against invasions.",
    "Photosynthesis is the process by which green plants turn sunlight, water and carbon dioxide into "
    "sugar and oxygen.",
]
ANSWERS = {  # query -> the passage that answers it (few shared words for the first and the last two)
    "What is the tallest mountain in the world?": 0,
    "What is the capital of France?": 3,
    "At what temperature does water boil?": 2,
    "Which is the biggest ocean?": 1,
    "How do plants make their food from sunlight?": 5,
    "Why was the Great Wall of China built?": 4,
}


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def tiny_ce_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("ce") / "tiny-cross-encoder")


@pytest.fixture(scope="module")
def tiny_ce(tiny_ce_dir: Path) -> Reranker:
    return Reranker(str(tiny_ce_dir), device="cpu", batch_size=3).load()


@pytest.fixture(scope="module")
def nano() -> Reranker:
    return Reranker("nanoranker").load()


# -- CrossEncoder ---------------------------------------------------------------------------------


def test_auto_backend_is_cross_encoder_for_a_sentence_transformers_folder(tiny_ce: Reranker) -> None:
    assert tiny_ce.backend_name == "cross-encoder" and not tiny_ce.supports_images
    assert not tiny_ce.spec.requires_remote_code


def test_logits_equal_cross_encoder_predict_raw_output(tiny_ce: Reranker, tiny_ce_dir: Path) -> None:
    from sentence_transformers import CrossEncoder

    query = "how many people live in berlin?"
    docs = ["Berlin has 3.5 million people.", "Paris is in France.", "", "berlin berlin", "museums"]
    reference = CrossEncoder(str(tiny_ce_dir), device="cpu")
    raw = reference.predict([(query, d) for d in docs], activation_fn=torch.nn.Identity())
    logits = tiny_ce.logits(query, docs)  # batch_size=3: two batches
    assert logits.dtype == np.float32 and logits.shape == (5,)
    np.testing.assert_allclose(logits, raw, rtol=0, atol=1e-6)
    assert len(set(np.round(logits, 6))) > 1  # the weights really distinguish the pairs
    # the model's saved activation is a sigmoid, so predict()'s default output is our score
    np.testing.assert_allclose(
        tiny_ce.score(query, docs), reference.predict([(query, d) for d in docs]), atol=1e-6
    )
    np.testing.assert_allclose(tiny_ce.score(query, docs), sigmoid64(raw), atol=1e-6)
    order = [r.index for r in tiny_ce.rerank(query, docs)]
    assert order == sorted(range(5), key=lambda i: -float(raw[i]))


def test_max_length_reaches_the_cross_encoder(tiny_ce_dir: Path) -> None:
    from sentence_transformers import CrossEncoder

    query = "a query"
    long_doc = " ".join(f"word{i}" for i in range(200))
    short = Reranker(str(tiny_ce_dir), device="cpu", max_length=16)
    reference = CrossEncoder(str(tiny_ce_dir), device="cpu", max_length=16)
    got = short.logits(query, [long_doc])
    want = reference.predict([(query, long_doc)], activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(got, want, atol=1e-6)
    full = Reranker(str(tiny_ce_dir), device="cpu").logits(query, [long_doc])
    assert abs(float(full[0]) - float(got[0])) > 1e-5  # truncation changed the input


def test_text_only_models_refuse_image_policies(tiny_ce_dir: Path) -> None:
    for policy in ("image", "image_text"):
        with pytest.raises(ConfigurationError, match="text-only"):
            Reranker(str(tiny_ce_dir), page_input=policy)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="text-only"):
            Reranker("nanoranker", page_input=policy)  # type: ignore[arg-type]


def test_text_only_model_scores_image_only_candidates_on_their_text_and_warns_once(
    tiny_ce: Reranker, tmp_path: Path
) -> None:
    rr = Reranker(tiny_ce.model, device="cpu")
    image_only = RerankCandidate(image=tmp_path / "never-opened.png", source="deck.pdf", page=4)
    with pytest.warns(UserWarning, match="text-only.*deck.pdf page 4") as record:
        got = rr.logits("q", [image_only, RerankCandidate(text="hello", image=Image.new("RGB", (8, 8)))])
    assert len([w for w in record if "text-only" in str(w.message)]) == 1
    np.testing.assert_allclose(got, tiny_ce.logits("q", ["", "hello"]), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rr.logits("q", [image_only])


def test_an_unloadable_cross_encoder_folder_is_reported(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelNotAvailableError, match="could not load the cross-encoder in"):
        Reranker(str(tmp_path / "empty-model"), device="cpu").load()


# -- nanoranker (real trained weights shipped on PyPI) --------------------------------------------


def test_nanoranker_puts_the_answer_first(nano: Reranker) -> None:
    assert nano.backend_name == "nanoranker" and not nano.supports_images
    for query, answer in ANSWERS.items():
        results = nano.rerank(query, PASSAGES)
        assert results[0].index == answer, (query, results)
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_nanoranker_scores_are_its_per_pair_probabilities(nano: Reranker) -> None:
    import nanoranker

    query = "What is the capital of France?"
    raw = dict(nanoranker.rank(query, PASSAGES, top_n=len(PASSAGES), normalize_scores=False))
    scores = nano.score(query, PASSAGES)
    np.testing.assert_allclose(scores, [raw[p] for p in PASSAGES], atol=1e-6)
    logits = nano.logits(query, PASSAGES)
    np.testing.assert_allclose(sigmoid64(logits), scores, atol=1e-6)
    # a pair's score does not depend on the other candidates (rank()'s default divides by the sum)
    alone = nano.score(query, [PASSAGES[3]])
    assert alone[0] == pytest.approx(float(scores[3]), abs=1e-6)
    normalized = dict(nanoranker.rank(query, PASSAGES, top_n=len(PASSAGES)))
    assert normalized[PASSAGES[3]] == pytest.approx(raw[PASSAGES[3]] / sum(raw.values()), rel=1e-6)


def test_nanoranker_batches_give_the_same_scores(nano: Reranker) -> None:
    query = "Which is the biggest ocean?"
    small = Reranker("nanoranker", batch_size=2)
    np.testing.assert_allclose(small.logits(query, PASSAGES), nano.logits(query, PASSAGES), atol=1e-5)
    dup = nano.logits(query, [PASSAGES[1], PASSAGES[0], PASSAGES[1]])
    assert dup[0] == dup[2]
    assert [r.index for r in nano.rerank(query, [PASSAGES[1], PASSAGES[0], PASSAGES[1]])] == [0, 2, 1]


def test_nanoranker_refuses_other_backends_and_models() -> None:
    with pytest.raises(ConfigurationError, match="nanoranker"):
        Reranker("nanoranker", backend="cross-encoder")
    with pytest.raises(ConfigurationError, match="nanoranker"):
        Reranker("ms-marco-minilm-l6-v2", backend="nanoranker")

"""Reranker's NVIDIA backend, through the real AutoModelForSequenceClassification + AutoProcessor
remote-code path on a stand-in of llama-nemotron-rerank-vl-1b-v2.

The stand-in scores a pair as (distinct query words in the document text) + 2 * (mean red - mean of
green and blue) of the image + at most 0.01 from a random layer, so orders are known in advance.
"""

from __future__ import annotations

import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from pagesight.errors import ConfigurationError, DocumentLoadError, ModelNotAvailableError
from pagesight.models._colembed_batching import EncoderOutOfMemoryError
from pagesight.models.rerank import RerankCandidate, Reranker, RerankResult

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_rerank_vl"))

from rerank_builders import build_standin_rerank_vl  # noqa: E402

NOISE = 0.01  # the stand-in's random layer moves a logit by at most this much
QUERY = "invoice total amount due"


def red(size: tuple[int, int] = (24, 32)) -> Image.Image:
    return Image.new("RGB", size, (255, 0, 0))


def blue(size: tuple[int, int] = (24, 32)) -> Image.Image:
    return Image.new("RGB", size, (0, 0, 255))


def grey(size: tuple[int, int] = (24, 32)) -> Image.Image:
    return Image.new("RGB", size, (128, 128, 128))


def sigmoid64(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_standin_rerank_vl(tmp_path_factory.mktemp("rerank") / "standin-rerank-vl")


@pytest.fixture(scope="module")
def reranker(standin_dir: Path) -> Reranker:
    return Reranker(str(standin_dir), trust_remote_code=True, device="cpu").load()


@pytest.fixture
def processor(reranker: Reranker) -> Any:
    """The loaded remote-code processor, its call log cleared."""
    loaded = reranker._backend.processor  # type: ignore[attr-defined]
    loaded.calls.clear()
    return loaded


@pytest.fixture
def model(reranker: Reranker) -> Any:
    """The loaded remote-code model, its call log cleared."""
    loaded = reranker._backend.model  # type: ignore[attr-defined]
    loaded.calls.clear()
    return loaded


# -- loading --------------------------------------------------------------------------------------


def test_loads_model_and_processor_through_remote_code(
    reranker: Reranker, processor: Any, model: Any
) -> None:
    assert reranker.backend_name == "nvidia" and reranker.supports_images
    assert type(model).__module__.startswith("transformers_modules.")
    assert type(processor).__module__.startswith("transformers_modules.")
    assert type(model).__name__ == "StandinRerankVLForSequenceClassification"
    # the loader's keyword arguments, not the saved defaults (2 tiles, no thumbnail, no budget)
    assert processor.init_kwargs["max_input_tiles"] == 6
    assert processor.init_kwargs["use_thumbnail"] is True
    assert processor.init_kwargs["rerank_max_length"] == 2048
    assert processor.init_kwargs["trust_remote_code"] is True
    assert (processor.max_input_tiles, processor.use_thumbnail) == (6, True)


def test_auto_backend_picks_nvidia_for_the_stand_in_folder(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir))
    assert rr.backend_name == "nvidia" and rr.spec.kind == "reranker" and rr.spec.requires_remote_code


def test_refuses_remote_code_without_trust_remote_code(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), device="cpu")
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        rr.rerank(QUERY, ["a"])


def test_registry_model_refused_naming_the_pinned_revision_before_any_download() -> None:
    rr = Reranker()  # llama-nemotron-rerank-vl-1b-v2
    assert rr.spec.hf_id == "nvidia/llama-nemotron-rerank-vl-1b-v2" and rr.backend_name == "nvidia"
    with pytest.raises(ConfigurationError, match="9c20c4aedf9ec87b6b7346c3bc4754ea030dab35"):
        rr.load()


def test_a_broken_folder_gives_model_not_available(standin_dir: Path, tmp_path: Path) -> None:
    broken = build_standin_rerank_vl(tmp_path / "broken")
    (broken / "modeling_standin_rerank_vl.py").unlink()
    with pytest.raises(ModelNotAvailableError, match="could not load the model in"):
        Reranker(str(broken), trust_remote_code=True, device="cpu").load()


def test_a_processor_without_the_crossencoder_method_is_refused(tmp_path: Path) -> None:
    folder = build_standin_rerank_vl(tmp_path / "no-method")
    code = (folder / "processing_standin_rerank_vl.py").read_text()
    code = code.replace("def process_queries_documents_crossencoder", "def process_something_else")
    (folder / "processing_standin_rerank_vl.py").write_text(code)
    with pytest.raises(ModelNotAvailableError, match="process_queries_documents_crossencoder"):
        Reranker(str(folder), trust_remote_code=True, device="cpu").load()


# -- scores ---------------------------------------------------------------------------------------


def test_logits_count_shared_words_and_scores_are_their_sigmoid(reranker: Reranker) -> None:
    docs = ["nothing relevant here", "the invoice", "invoice total", "total amount due on invoice"]
    logits = reranker.logits(QUERY, docs)
    assert logits.dtype == np.float32 and logits.shape == (4,)
    np.testing.assert_allclose(logits, [0, 1, 2, 4], atol=NOISE)
    assert not np.array_equal(logits, np.round(logits))  # the random layer really ran
    scores = reranker.score(QUERY, docs)
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, sigmoid64(logits), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, [0.5, 0.7311, 0.8808, 0.9820], atol=3e-3)


def test_rerank_sorts_descending_with_scores_and_logits(reranker: Reranker) -> None:
    docs = ["invoice", "nothing", "total amount due on invoice", "invoice total"]
    results = reranker.rerank(QUERY, docs)
    assert all(isinstance(r, RerankResult) for r in results)
    assert [r.index for r in results] == [2, 3, 0, 1]
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    logits = reranker.logits(QUERY, docs)
    for r in results:
        assert r.logit == pytest.approx(float(logits[r.index]), abs=1e-6)
        assert r.score == pytest.approx(float(sigmoid64(logits[r.index])), abs=1e-6)


def test_ties_keep_input_order(reranker: Reranker) -> None:
    same = "invoice total"
    docs = [same, "total amount due on invoice", same, "nothing", same]
    results = reranker.rerank(QUERY, docs)
    assert [r.index for r in results] == [1, 0, 2, 4, 3]
    tied = [r.logit for r in results if r.index in (0, 2, 4)]
    assert tied[0] == tied[1] == tied[2]


def test_top_n(reranker: Reranker) -> None:
    docs = ["invoice", "nothing", "total amount due on invoice", "invoice total"]
    full = reranker.rerank(QUERY, docs)
    assert reranker.rerank(QUERY, docs, top_n=2) == full[:2]
    assert reranker.rerank(QUERY, docs, top_n=None) == full and len(full) == 4
    assert reranker.rerank(QUERY, docs, top_n=10) == full
    assert reranker.rerank(QUERY, docs, top_n=0) == []
    with pytest.raises(ConfigurationError, match="top_n"):
        reranker.rerank(QUERY, docs, top_n=-1)


def test_empty_input_and_top_n_zero_load_nothing(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), device="cpu")  # no trust_remote_code: loading would raise
    assert rr.rerank(QUERY, []) == []
    assert rr.rerank(QUERY, ["invoice"], top_n=0) == []
    out = rr.logits(QUERY, [])
    assert out.shape == (0,) and out.dtype == np.float32
    assert rr.score(QUERY, []).shape == (0,)
    assert rr._backend._model is None  # type: ignore[attr-defined]


# -- token budget ---------------------------------------------------------------------------------


def test_budget_is_2048_with_images_and_8192_for_text(reranker: Reranker, processor: Any) -> None:
    reranker.logits(QUERY, ["invoice total", "amount"])
    assert processor.calls == [{"forms": ["text", "text"], "max_length": 8192}]
    processor.calls.clear()
    reranker.logits(QUERY, [RerankCandidate(image=red())])
    assert processor.calls == [{"forms": ["image"], "max_length": 2048}]


def test_mixed_candidates_batch_text_and_images_apart(reranker: Reranker, processor: Any) -> None:
    cands = [
        RerankCandidate(text="invoice"),
        RerankCandidate(text="invoice total", image=grey()),
        RerankCandidate(image=red()),
        "amount due",
    ]
    logits = reranker.logits(QUERY, cands)
    assert processor.calls == [  # image+text pages get 10240 tokens (an image alone takes up to 1792)
        {"forms": ["text", "text"], "max_length": 8192},
        {"forms": ["image_text"], "max_length": 10240},
        {"forms": ["image"], "max_length": 2048},
    ]
    np.testing.assert_allclose(logits, [1, 2, 2, 2], atol=NOISE)  # results back in input order


def test_max_length_overrides_both_budgets_and_truncates(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", max_length=5).load()
    proc = rr._backend.processor  # type: ignore[attr-defined]
    # query (4 words) + SEP leave no room for the document: nothing shared
    logits = rr.logits(QUERY, ["invoice total amount due", RerankCandidate(image=grey())])
    assert [c["max_length"] for c in proc.calls] == [5, 5]
    np.testing.assert_allclose(logits, [0, 0], atol=NOISE)
    assert Reranker(str(standin_dir), trust_remote_code=True).max_length is None


# -- images and the page policy -------------------------------------------------------------------


def test_the_image_changes_the_score(reranker: Reranker) -> None:
    cands = [
        RerankCandidate(text="the invoice"),  # 1 shared word
        RerankCandidate(image=blue(), source="a.pdf", page=1),  # -1
        RerankCandidate(image=red(), source="a.pdf", page=2),  # +2: first
        RerankCandidate(image=grey(), source="a.pdf", page=3),  # 0
    ]
    results = reranker.rerank(QUERY, cands)
    assert [r.index for r in results] == [2, 0, 3, 1]
    np.testing.assert_allclose([r.logit for r in results], [2, 1, 0, -1], atol=NOISE + 0.02)


def test_image_paths_score_like_pil_images(reranker: Reranker, tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    red().save(path)
    by_path = reranker.logits(QUERY, [RerankCandidate(image=path), RerankCandidate(image=str(path))])
    by_pil = reranker.logits(QUERY, [RerankCandidate(image=red())])
    np.testing.assert_allclose(by_path, [by_pil[0], by_pil[0]], atol=1e-6)


@pytest.mark.parametrize(
    ("policy", "form", "logit"),
    [
        ("auto", "image_text", 4.0),
        ("image_text", "image_text", 4.0),
        ("image", "image", 2.0),
        ("text", "text", 2.0),
    ],
)
def test_page_policy_decides_what_the_model_sees(
    standin_dir: Path, policy: Any, form: str, logit: float
) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", page_input=policy).load()
    proc = rr._backend.processor  # type: ignore[attr-defined]
    out = rr.logits(QUERY, [RerankCandidate(text="invoice total", image=red())])
    assert proc.calls[-1]["forms"] == [form]
    assert out[0] == pytest.approx(logit, abs=NOISE)


def test_auto_policy_scores_image_alone_without_text_and_text_without_image(
    reranker: Reranker, processor: Any
) -> None:
    reranker.logits(QUERY, [RerankCandidate(text="   ", image=red()), RerankCandidate(text="invoice")])
    forms = sorted(f for call in processor.calls for f in call["forms"])
    assert forms == ["image", "text"]


def test_text_policy_never_opens_the_image(standin_dir: Path, tmp_path: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", page_input="text")
    out = rr.logits(QUERY, [RerankCandidate(text="invoice", image=tmp_path / "missing.png")])
    assert out[0] == pytest.approx(1.0, abs=NOISE)


def test_image_policy_without_an_image_falls_back_to_text_and_warns_once(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", page_input="image")
    cands = [RerankCandidate(text="invoice total", source="notes.html", page=2), "invoice"]
    with pytest.warns(UserWarning, match="no image.*notes.html page 2") as record:
        out = rr.logits(QUERY, cands)
    assert len([w for w in record if "no image" in str(w.message)]) == 1
    np.testing.assert_allclose(out, [2, 1], atol=NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rr.logits(QUERY, cands)  # once per reranker


def test_unreadable_images_name_the_page(reranker: Reranker, tmp_path: Path) -> None:
    missing = RerankCandidate(text="x", image=tmp_path / "gone.png", source="report.pdf", page=3)
    with pytest.raises(DocumentLoadError, match=r"report\.pdf \(page 3\).*does not exist") as info:
        reranker.logits(QUERY, ["invoice", missing])
    assert info.value.source == "report.pdf" and info.value.page == 3
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DocumentLoadError, match=r"scan\.pdf \(page 7\).*not a readable image"):
        reranker.logits(QUERY, [RerankCandidate(image=junk, source="scan.pdf", page=7)])


# -- batching -------------------------------------------------------------------------------------


def test_batches_follow_batch_size(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", batch_size=3).load()
    model = rr._backend.model  # type: ignore[attr-defined]
    docs = [f"invoice {i}" for i in range(7)]
    rr.logits(QUERY, docs)
    assert [c["n"] for c in model.calls] == [3, 3, 1]


def test_cuda_out_of_memory_halves_the_batch_and_loses_nothing(
    standin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", batch_size=8).load()
    docs = [
        RerankCandidate(text=f"invoice total {'due ' * (i % 3)}", image=red() if i % 2 else None)
        for i in range(11)
    ]
    expected = rr.logits(QUERY, docs)
    model = rr._backend.model  # type: ignore[attr-defined]
    real_forward = model.forward
    sizes: list[int] = []

    def forward(**kwargs: Any) -> Any:
        n = int(kwargs["input_ids"].shape[0])
        sizes.append(n)
        if n > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
        return real_forward(**kwargs)

    monkeypatch.setattr(model, "forward", forward)
    got = rr.logits(QUERY, docs)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert rr.batch_size == 2
    # 6 text pairs at batch size 8 fail, at 4 fail, then run 2 at a time; the 5 image pairs keep size 2
    assert sizes == [6, 4, 2, 2, 2, 2, 2, 1]

    def always(**kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(model, "forward", always)
    with pytest.raises(EncoderOutOfMemoryError, match="1 item"):
        rr.logits(QUERY, ["invoice"])


def test_bfloat16_weights_give_float32_logits(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu", dtype="bfloat16").load()
    assert rr._backend.model.dtype == torch.bfloat16  # type: ignore[attr-defined]
    out = rr.logits(QUERY, ["invoice total", RerankCandidate(image=red())])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [2, 2], atol=0.05)


def test_concurrent_calls_load_once_and_agree(standin_dir: Path) -> None:
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cpu")
    loads: list[int] = []
    real_load = rr._backend.load
    lock = threading.Lock()

    def counting_load() -> None:
        with lock:
            if rr._backend._model is None:  # type: ignore[attr-defined]
                loads.append(1)  # a call that really loads weights
        real_load()

    rr._backend.load = counting_load  # type: ignore[method-assign]
    docs = ["invoice", RerankCandidate(image=red()), "total amount due"]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: rr.logits(QUERY, docs), range(8)))
    assert len(loads) == 1
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.gpu
def test_cuda_bfloat16_matches_cpu(standin_dir: Path, reranker: Reranker) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    rr = Reranker(str(standin_dir), trust_remote_code=True, device="cuda").load()
    assert rr._backend.model.dtype == torch.bfloat16  # type: ignore[attr-defined]
    docs = ["invoice total", RerankCandidate(image=red()), RerankCandidate(text="due", image=blue())]
    np.testing.assert_allclose(rr.logits(QUERY, docs), reranker.logits(QUERY, docs), atol=0.05)

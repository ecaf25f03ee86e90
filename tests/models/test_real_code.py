"""Issue 17: what public deployers hit with the NVIDIA, NV-Embed and E5-V models on real weights,
reproduced in stand-ins (``standin_realcode/``) loaded through the real remote-code path.

One test (at least) per behaviour of the issue, each named ``test_real_code_*``:

1. v1 ColEmbed composite-config ``to_dict`` bug and the moved pins;
2. v1 needs flash-attn (module-top import), said before loading;
3. E5-V and NV-Embed-v2 version checks before loading;
4. forced flash-attention 2 said truthfully; the attention in use reported; TypeError at the
   first encode translated;
5. processors the model's own code loads get the pinned revision (offline, only the pinned
   snapshot cached);
6. long ColEmbed text windowed, not cut at ``q_max_length``;
7. reranker budget per input kind;
8. ``datasets`` named with the right extra; DataLoader workers 0; 3b-v2 tiling;
9. the 1b-vlm-embed-v1 entry marked unverified.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pagesight.errors import ModelNotAvailableError
from pagesight.models import ColEmbedEncoder, Reranker, VLEncoder
from pagesight.models.registry import MODELS, ModelSpec
from pagesight.models.rerank import RerankCandidate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "standin_realcode"))
sys.path.insert(0, str(HERE / "standin_rerank_vl"))

from realcode_builders import build_embed_vl, build_qwen, build_v1, hub_cache_copy  # noqa: E402
from rerank_builders import build_standin_rerank_vl  # noqa: E402
from tiny_models import minilm_path  # noqa: E402

PIN = "0123456789abcdef0123456789abcdef01234567"


def folder_spec(folder: Path, kind: str, backend: str = "nvidia", **changes: Any) -> ModelSpec:
    """An ad-hoc spec of a stand-in folder (no registry environment, so no version constraint)."""
    return ModelSpec(
        alias=str(folder), kind=kind, path=str(folder), backend=backend, requires_remote_code=True, **changes
    )  # type: ignore[arg-type]


def row_at(alias: str, folder: Path) -> ModelSpec:
    """A registry row pointed at a stand-in folder (its environment and Hub id kept)."""
    return dataclasses.replace(MODELS[alias], path=str(folder))


def legacy_to_diff_dict(config: Any) -> dict[str, Any]:
    """What transformers 4.52-4.57 ``PretrainedConfig.to_diff_dict`` does first (its ``repr`` and
    ``save_pretrained`` go through it): ``{}`` for a class with ``has_no_defaults_at_init``, else a
    DEFAULT instance's ``to_dict()``. The v1 config declares only the old name ``is_composition``."""
    defaults = {} if getattr(type(config), "has_no_defaults_at_init", False) else type(config)().to_dict()
    return {k: v for k, v in config.to_dict().items() if defaults.get(k) != v}


@pytest.fixture(scope="module")
def v1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_v1(tmp_path_factory.mktemp("realcode") / "v1")


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_qwen(tmp_path_factory.mktemp("realcode") / "qwen", minilm_path(), q_max_length=48)


# -- 1. v1 composite config, pins ------------------------------------------------------------------


def test_real_code_v1_config_survives_the_default_instance_to_dict(v1_dir: Path) -> None:
    enc = ColEmbedEncoder(str(v1_dir), backend="nvidia", trust_remote_code=True, device="cpu").load()
    config = enc._backend.model.config  # type: ignore[attr-defined]
    # the crash of transformers 4.52-4.57 (MTEB issue #3917): a default instance has no vision_config
    assert type(config).has_no_defaults_at_init is True
    assert type(config)().to_dict()["model_type"] == "realcode_colembed_v1"
    assert "vision_config" in legacy_to_diff_dict(config)
    # list[Tensor] outputs, un-normalized: unit rows come back
    rows = enc.encode_queries(["invoice total"])[0]
    assert rows.shape == (len("invoice total"), 16)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_real_code_v1_config_patch_is_applied_once_across_threads(v1_dir: Path) -> None:
    import transformers

    from pagesight.models._nvidia_compat import patch_composite_config

    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(patch_composite_config(transformers, str(v1_dir), {})))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 6
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    cls = get_class_from_dynamic_module("modeling_realcode.RealcodeV1Config", str(v1_dir))
    wrapped = cls.to_dict
    assert getattr(wrapped, "__wrapped__", None) is not None
    assert getattr(wrapped.__wrapped__, "__wrapped__", None) is None  # wrapped once, not per call


def test_real_code_v1_pins_moved_and_old_pins_selectable() -> None:
    from pagesight.models.environment import diagnose

    spec = MODELS["llama-nemoretriever-colembed-3b-v1"]
    assert spec.revision == "4194bdd2cd2871f220ddba6273ce173ef1217a1e"  # MTEB PR #3925
    old = "50c36f4d5271c6851aa08bd26d69f6e7ca8b870c"
    report = diagnose(spec, old)
    assert report.revision == old and report.environment is not None
    assert report.environment.name == "colembed-llama" and report.environment.transformers == "==4.49.0"
    enc = ColEmbedEncoder("llama-nemoretriever-colembed-3b-v1", revision=old, trust_remote_code=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert enc._backend.revision == old  # type: ignore[attr-defined]


# -- 2. flash-attn for v1, said up front -------------------------------------------------------------


def test_real_code_v1_flash_attn_import_is_refused_before_loading(tmp_path: Path) -> None:
    from pagesight.models.environment import imports_flash_attn_at_top

    folder = build_v1(tmp_path / "v1-flash", flash_attn_at_top=True)
    assert imports_flash_attn_at_top(folder) == ["modeling_realcode_wrapped.py"]
    enc = ColEmbedEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu")
    with pytest.raises(ModelNotAvailableError) as info:
        enc.load()
    message = str(info.value)
    assert "pip install flash-attn --no-build-isolation" in message
    assert "cannot load with sdpa or eager" in message
    assert not any("modeling_realcode_wrapped" in name for name in sys.modules)  # never imported


def test_real_code_v1_registry_rows_say_flash_attn_is_required() -> None:
    from pagesight.models.environment import diagnose

    for alias in ("llama-nemoretriever-colembed-3b-v1", "llama-nemoretriever-colembed-1b-v1"):
        report = diagnose(MODELS[alias], device="cpu")
        assert report.flash_attn == "required"
        assert any("CUDA GPUs only" in p for p in report.problems)


# -- 3. E5-V and NV-Embed-v2 versions ---------------------------------------------------------------


def test_real_code_e5v_version_check_before_loading(tmp_path: Path) -> None:
    enc = VLEncoder(str(tmp_path), backend="e5-v", device="cpu")
    enc._backend.spec = row_at("e5-v", tmp_path)  # type: ignore[attr-defined]
    with pytest.raises(ModelNotAvailableError) as info:
        enc.load()
    message = str(info.value)
    assert "transformers>=4.41,<=4.44.2" in message and 'pip install "pagesight[e5v]"' in message
    assert "MTEB issue #1647" in message


def test_real_code_nvembed_version_check_names_the_card_pair(tmp_path: Path) -> None:
    from pagesight.models.environment import check_environment

    with pytest.raises(ModelNotAvailableError) as info:
        check_environment(row_at("nv-embed-v2", tmp_path), device="cpu")
    message = str(info.value)
    assert "transformers>=4.42,<4.48" in message and 'pip install "pagesight[nvembed]"' in message


# -- 4. attention override, first-encode errors ------------------------------------------------------


def test_real_code_forced_flash_attention_is_reported_truthfully(tmp_path: Path) -> None:
    folder = build_embed_vl(tmp_path / "forced-fa2", force_llm_attn="flash_attention_2")
    enc = VLEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu")
    with pytest.raises(ModelNotAvailableError) as info:
        enc.load()
    message = str(info.value)
    assert "switches its attention to flash_attention_2 itself" in message
    assert "attn_implementation='sdpa'" in message and "not a download problem" in message


def test_real_code_attention_in_use_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = build_embed_vl(tmp_path / "forced-eager", force_llm_attn="eager")
    with caplog.at_level(logging.WARNING):
        enc = VLEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu").load()
    assert (
        "attn_implementation='sdpa' was asked, but the model's own code set llm_config=eager" in caplog.text
    )
    assert enc.encode_queries(["q"]).shape[0] == 1


def test_real_code_first_encode_type_error_names_the_version(tmp_path: Path) -> None:
    folder = build_embed_vl(tmp_path / "typeerror", encode_typeerror=True)
    enc = VLEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu").load()
    with pytest.raises(ModelNotAvailableError) as info:
        enc.encode_queries(["total"])
    message = str(info.value)
    import transformers

    assert f"transformers {transformers.__version__}" in message
    assert "input_embeds" in message and "written for another transformers" in message


# -- 5. processors loaded by the model's own code get the pin ----------------------------------------


def test_real_code_inner_processor_loads_the_pinned_snapshot_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    folder = build_embed_vl(tmp_path / "inner", minilm_path(), inner_processor=True)
    hub_cache_copy(folder, cache, "pagesight-test/realcode-embed-vl", PIN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    spec = ModelSpec(
        alias="pagesight-test/realcode-embed-vl",
        kind="dense-vl",
        hf_id="pagesight-test/realcode-embed-vl",
        revision=PIN,
        backend="nvidia",
        requires_remote_code=True,
    )
    enc = VLEncoder(
        "pagesight-test/realcode-embed-vl", backend="nvidia", trust_remote_code=True, device="cpu"
    )
    enc._backend.spec = spec  # type: ignore[attr-defined]
    enc._backend.revision = PIN  # type: ignore[attr-defined]
    enc.load()  # the model's __init__ calls AutoProcessor.from_pretrained(id) with no revision
    tokenizer = enc._backend.model.processor.tokenizer  # type: ignore[attr-defined]
    assert type(tokenizer).__name__.startswith("Bert")  # the pinned snapshot's tokenizer
    assert enc.encode_queries(["q"]).shape[0] == 1


def test_real_code_qwen_get_processor_loads_the_pinned_snapshot_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    folder = build_qwen(tmp_path / "qwen-hub", minilm_path())
    hub_cache_copy(folder, cache, "pagesight-test/realcode-qwen", PIN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    spec = ModelSpec(
        alias="pagesight-test/realcode-qwen",
        kind="late-interaction",
        hf_id="pagesight-test/realcode-qwen",
        revision=PIN,
        backend="nvidia",
        requires_remote_code=True,
    )
    enc = ColEmbedEncoder(
        "pagesight-test/realcode-qwen", backend="nvidia", trust_remote_code=True, device="cpu"
    )
    enc._backend.spec = spec  # type: ignore[attr-defined]
    enc._backend.revision = PIN  # type: ignore[attr-defined]
    # forward_queries calls _get_processor(): AutoProcessor.from_pretrained(config._name_or_path), no revision
    rows = enc.encode_queries(["total due"])[0]
    assert rows.shape[1] == 16 and rows.shape[0] >= 2


# -- 6. long ColEmbed text ----------------------------------------------------------------------------


def test_real_code_long_colembed_text_is_windowed_not_cut(qwen_dir: Path) -> None:
    enc = ColEmbedEncoder(str(qwen_dir), backend="nvidia", trust_remote_code=True, device="cpu").load()
    model = enc._backend.model  # type: ignore[attr-defined]
    text = " ".join(f"word{i}" for i in range(120))  # ~360 MiniLM tokens, q_max_length 48
    tokens = len(model._get_processor().tokenizer(text, add_special_tokens=False)["input_ids"])
    model.calls.clear()
    rows = enc.encode_documents([text])[0]
    assert tokens > 48 and rows.shape[0] >= tokens  # every token embedded (windows share a few)
    assert all(n <= 48 for _, lengths in model.calls for n in lengths)
    short = enc.encode_documents(["word1 word2"])[0]
    assert short.shape[0] == len(
        model._get_processor().tokenizer("word1 word2", add_special_tokens=False)["input_ids"]
    )


# -- 7. reranker budget per input kind ----------------------------------------------------------------


def test_real_code_reranker_budget_per_input_kind(tmp_path: Path) -> None:
    folder = build_standin_rerank_vl(tmp_path / "rerank")
    rr = Reranker(str(folder), trust_remote_code=True, device="cpu").load()
    proc = rr._backend.processor  # type: ignore[attr-defined]
    image = Image.new("RGB", (24, 32), "red")
    rr.logits(
        "total due", ["total", RerankCandidate(image=image), RerankCandidate(text="total", image=image)]
    )
    budgets = {tuple(c["forms"]): c["max_length"] for c in proc.calls}
    assert budgets == {("text",): 8192, ("image",): 2048, ("image_text",): 10240}


def test_real_code_reranker_nan_logits_are_refused(tmp_path: Path) -> None:
    folder = build_standin_rerank_vl(tmp_path / "rerank-nan")
    modeling = next(folder.glob("modeling_*.py"))
    text = modeling.read_text()
    line = "        logits = (overlap + image_term + noise).unsqueeze(-1)\n"
    assert line in text
    modeling.write_text(text.replace(line, line + "        logits = logits * float('nan')\n"))
    rr = Reranker(str(folder), trust_remote_code=True, device="cpu").load()
    with pytest.raises(ModelNotAvailableError, match="non-finite relevance logits for 2 of 2"):
        rr.logits("total", ["total", "amount"])


# -- 8. Qwen v2: datasets, DataLoader workers, None images; 3b-v2 tiling -----------------------------


def test_real_code_datasets_is_named_with_its_extra(tmp_path: Path) -> None:
    from pagesight.models.environment import diagnose

    folder = build_qwen(tmp_path / "qwen-datasets", minilm_path(), datasets_at_top=True)
    report = diagnose(row_at("nemotron-colembed-vl-4b-v2", folder))
    assert report.environment is not None and "datasets" in report.environment.packages
    assert report.pip == 'pip install "pagesight[colembed-qwen]"'
    enc = ColEmbedEncoder(str(folder), backend="nvidia", trust_remote_code=True, device="cpu")
    enc._backend.spec = row_at("nemotron-colembed-vl-4b-v2", folder)  # type: ignore[attr-defined]
    with pytest.raises(ModelNotAvailableError, match=r"pagesight\[colembed-qwen\]"):
        enc.load()


def test_real_code_qwen_dataloader_runs_without_workers(qwen_dir: Path) -> None:
    enc = ColEmbedEncoder(str(qwen_dir), backend="nvidia", trust_remote_code=True, device="cpu").load()
    model = enc._backend.model  # type: ignore[attr-defined]
    enc.encode_queries(["total", "who signed"])
    assert model.loader_workers == [0]  # the remote code asked for 8


def test_real_code_qwen_pages_never_pass_a_none_image(qwen_dir: Path, tmp_path: Path) -> None:
    from pagesight.documents.page import Page

    enc = ColEmbedEncoder(str(qwen_dir), backend="nvidia", trust_remote_code=True, device="cpu").load()
    image = tmp_path / "p.png"
    Image.new("RGB", (32, 32), "white").save(image)
    pages = [
        Page(source="a.pdf", page=1, text="", image=image, width=32, height=32, content_hash="0" * 64),
        Page(
            source="a.pdf",
            page=2,
            text="only text here",
            image=None,
            width=0,
            height=0,
            content_hash="0" * 64,
        ),
    ]
    out = enc.encode_pages(pages)
    assert len(out) == 2 and all(m.shape[1] == 16 for m in out)


def test_real_code_3b_v2_tiling_per_card(v1_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGESIGHT_SKIP_ENV_CHECK", "1")  # the row wants transformers 4.49.0
    enc = ColEmbedEncoder(str(v1_dir), backend="nvidia", trust_remote_code=True, device="cpu")
    enc._backend.spec = row_at("llama-nemotron-colembed-vl-3b-v2", v1_dir)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc.load()
    processor = enc._backend.model.processor  # type: ignore[attr-defined]
    assert (processor.max_input_tiles, processor.use_thumbnail) == (8, True)


# -- 9. 1b-vlm-embed-v1 --------------------------------------------------------------------------------


def test_real_code_1b_vlm_embed_v1_is_marked_unverified() -> None:
    spec = MODELS["llama-3.2-nemoretriever-1b-vlm-embed-v1"]
    assert spec.verified is not None and spec.verified.startswith("UNVERIFIED")
    enc = VLEncoder("llama-3.2-nemoretriever-1b-vlm-embed-v1", trust_remote_code=True, device="cpu")
    with pytest.warns(UserWarning, match="UNVERIFIED"), pytest.raises(ModelNotAvailableError):
        enc.load()

"""The gpu profile and what ``auto`` chooses: CUDA plus both models in the Hugging Face cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagesight.profiles import PROFILES, gpu_ready, is_dense_vl_model, resolve_profile


def _cache_model(cache: Path, hf_id: str, revision: str | None) -> None:
    """Lay out a model the way huggingface_hub's cache does (refs, snapshots/<rev>/config.json)."""
    folder = cache / ("models--" + hf_id.replace("/", "--"))
    rev = revision or "0" * 40
    snapshot = folder / "snapshots" / rev
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(rev)


def test_gpu_profile_is_selectable_and_names_its_models():
    profile, why = resolve_profile("gpu")
    assert profile is PROFILES["gpu"] and "requested" in why
    assert profile.embedder == "llama-nemotron-embed-vl-1b-v2"
    assert profile.reranker == "llama-nemotron-rerank-vl-1b-v2"
    assert profile.trust_remote_code


def test_auto_without_cuda_chooses_offline_and_says_why():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    profile, why = resolve_profile("auto")
    assert profile.name == "offline" and "no CUDA" in why


def test_auto_with_cuda_needs_both_models_cached(tmp_path, monkeypatch):
    import torch

    from pagesight.models.registry import resolve_dense_vl
    from pagesight.models.rerank import resolve_reranker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here; the choice is what's tested
    monkeypatch.setenv("PAGESIGHT_SKIP_ENV_CHECK", "1")  # the cache rule alone (the packages: next test)
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    embed = resolve_dense_vl("llama-nemotron-embed-vl-1b-v2")
    rerank = resolve_reranker("llama-nemotron-rerank-vl-1b-v2")

    ready, why = gpu_ready()
    assert not ready and embed.hf_id in why and rerank.hf_id in why
    _cache_model(cache, embed.hf_id, embed.revision)
    ready, why = gpu_ready()
    assert not ready and rerank.hf_id in why and embed.hf_id not in why
    _cache_model(cache, rerank.hf_id, rerank.revision)
    # auto never allows remote code by itself: the caller must.
    profile, why = resolve_profile(None)
    assert profile.name == "offline" and "--trust-remote-code" in why and "cached" in why
    assert not profile.trust_remote_code
    profile, why = resolve_profile(None, trust_remote_code=True)
    assert profile.name == "gpu" and "cached" in why


def test_auto_does_not_choose_gpu_when_the_installed_packages_cannot_run_its_models(
    tmp_path, monkeypatch, capsys
):
    """The real per-model environment check (issue 17) against the installed versions."""
    import torch

    from pagesight.cli import main
    from pagesight.models.environment import diagnose
    from pagesight.models.registry import resolve_dense_vl
    from pagesight.models.rerank import resolve_reranker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU here; the choice is what's tested
    monkeypatch.delenv("PAGESIGHT_SKIP_ENV_CHECK", raising=False)
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    specs = [
        resolve_dense_vl("llama-nemotron-embed-vl-1b-v2"),
        resolve_reranker("llama-nemotron-rerank-vl-1b-v2"),
    ]
    for spec in specs:
        _cache_model(cache, spec.hf_id, spec.revision)
    reports = [diagnose(spec, device="cuda") for spec in specs]
    problems = [p for r in reports for p in r.problems]

    ready, why = gpu_ready()
    profile, chosen = resolve_profile(None, trust_remote_code=True)
    assert ready == (not problems)
    if problems:  # this venv: no torchvision (the nvidia-vl extra is not installed)
        assert profile.name == "offline" and "cannot run" in chosen
        assert all(p in why for p in problems)
        assert all(r.pip in why for r in reports if not r.ok) and "pagesight doctor" in why
    else:
        assert profile.name == "gpu"
    code = main(["doctor", specs[0].alias])
    out = capsys.readouterr().out
    assert code == (1 if not reports[0].ok else 0)
    verdict = "it passes" if reports[0].ok else "it fails here, so auto picks offline"
    assert f"auto picks gpu only when this check passes ({verdict})" in out
    # the escape hatch that lets loading try anyway lets auto choose gpu too
    monkeypatch.setenv("PAGESIGHT_SKIP_ENV_CHECK", "1")
    assert gpu_ready()[0] and resolve_profile(None, trust_remote_code=True)[0].name == "gpu"


def test_dense_vl_models_are_recognised():
    assert is_dense_vl_model("llama-nemotron-embed-vl-1b-v2")
    assert is_dense_vl_model("nvidia/llama-nemotron-embed-vl-1b-v2")
    assert is_dense_vl_model("clip-vit-b-32")
    assert not is_dense_vl_model("all-minilm-l6-v2")
    assert not is_dense_vl_model("minilm-tokens")

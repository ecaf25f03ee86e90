"""The late-interaction registry entries and the non-commercial license warning."""

from __future__ import annotations

import re
import warnings

import pytest

from pagesight.models import colembed
from pagesight.models.registry import LATE_INTERACTION, REGISTRY, resolve, resolve_late_interaction

HEX40 = re.compile(r"^[0-9a-f]{40}$")

# The pins MTEB runs today (PRs #3925 and #4125); the old ones stay selectable with revision=.
NVIDIA = {
    "llama-nemoretriever-colembed-3b-v1": ("4194bdd2cd2871f220ddba6273ce173ef1217a1e", 3072),
    "llama-nemoretriever-colembed-1b-v1": ("6eade800103413033f260bb55b49fe039fd28a6e", 2048),
    "llama-nemotron-colembed-vl-3b-v2": ("680b47b199f99bc0ec2f4e90ffa583ec0c2e452c", 3072),
    "nemotron-colembed-vl-4b-v2": ("0ed152d91f8ad4c5d48296b51c220f686641a398", 2560),
    "nemotron-colembed-vl-8b-v2": ("34b640612f311ed05a6c7c62c6564847ed555f5f", 4096),
}
OLD_PINS = {
    "llama-nemoretriever-colembed-3b-v1": "50c36f4d5271c6851aa08bd26d69f6e7ca8b870c",
    "llama-nemoretriever-colembed-1b-v1": "1f0fdea7f5b19532a750be109b19072d719b8177",
    "llama-nemotron-colembed-vl-3b-v2": "75f03c712cb3a252e062295f9a0966e5d95d6156",
    "nemotron-colembed-vl-4b-v2": "823b1625c15fe3da73fa094205e538a7a2301a2a",
    "nemotron-colembed-vl-8b-v2": "6cbe43579dda6237768fc373768ad372cc5cdfec",
}


@pytest.mark.parametrize("alias", sorted(NVIDIA))
def test_nvidia_entries_are_pinned_non_commercial_remote_code(alias: str) -> None:
    spec = resolve_late_interaction(alias)
    revision, dims = NVIDIA[alias]
    assert spec.hf_id == f"nvidia/{alias}" and spec.revision == revision and HEX40.match(revision)
    assert spec.kind == "late-interaction" and spec.backend == "nvidia" and spec.dimensions == dims
    assert spec.commercial_use is False and spec.requires_remote_code
    assert OLD_PINS[alias] in spec.previous_revisions
    assert spec.license is not None and ("Non-Commercial" in spec.license or "NC" in spec.license)
    assert resolve_late_interaction(f"nvidia/{alias}") is spec
    assert resolve_late_interaction(alias.upper()) is spec


def test_minilm_tokens_is_the_packaged_minilm() -> None:
    spec = resolve_late_interaction("minilm-tokens")
    assert spec.backend == "token-embeddings" and spec.dimensions == 384 and spec.commercial_use is True
    assert spec.local_path is not None and spec.local_path() is not None
    assert resolve_late_interaction("sentence-transformers/all-MiniLM-L6-v2") is spec


def test_dense_registry_is_untouched() -> None:
    assert sorted(REGISTRY) == ["all-minilm-l6-v2", "nomic-embed-text", "nomic-embed-text-v1.5"]
    assert not set(LATE_INTERACTION) & set(REGISTRY)
    assert resolve_late_interaction("all-minilm-l6-v2") is resolve("all-minilm-l6-v2")


def test_choosing_a_non_commercial_model_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pagesight.models._licenses._WARNED_LICENSES", set())
    with pytest.warns(UserWarning, match="colembed-1b-v1 is licensed for non-commercial"):
        colembed.ColEmbedEncoder("llama-nemoretriever-colembed-1b-v1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        colembed.ColEmbedEncoder("nvidia/llama-nemoretriever-colembed-1b-v1")  # same model: no second warning
        colembed.ColEmbedEncoder("minilm-tokens")  # Apache-2.0: none


def test_backends_picked_from_names() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert colembed.ColEmbedEncoder("nvidia/some-colembed-vl-9b").backend_name == "nvidia"
    assert colembed.ColEmbedEncoder("lightonai/GTE-ModernColBERT-v1").backend_name == "sentence-transformers"
    assert colembed.ColEmbedEncoder("all-minilm-l6-v2").backend_name == "token-embeddings"

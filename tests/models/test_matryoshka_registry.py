"""The model registry: aliases, pinned specs, ad-hoc specs for Hub ids, folders and Ollama names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models.registry import NOMIC_PREFIXES, REGISTRY, for_backend, known_aliases, resolve

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def test_aliases() -> None:
    assert known_aliases() == ["all-minilm-l6-v2", "nomic-embed-text", "nomic-embed-text-v1.5"]


def test_minilm_is_the_packaged_offline_default() -> None:
    spec = resolve("all-minilm-l6-v2")
    assert spec.hf_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert spec.dimensions == 384 and spec.max_tokens == 256
    assert spec.prefixes == {} and spec.truncation == "plain" and spec.matryoshka_dims is None
    assert spec.license == "Apache-2.0" and spec.commercial_use is True
    assert spec.local_path is not None
    path = spec.local_path()
    assert path is not None and (path / "model.safetensors").is_file()


def test_nomic_spec_is_pinned_with_prefixes_and_matryoshka_sizes() -> None:
    spec = resolve("nomic-embed-text-v1.5")
    assert spec.hf_id == "nomic-ai/nomic-embed-text-v1.5"
    assert spec.revision is not None and HEX40.match(spec.revision)
    assert spec.code_revision is not None and HEX40.match(spec.code_revision)
    assert spec.requires_remote_code
    assert spec.dimensions == 768 and spec.matryoshka_dims == (64, 128, 256, 512, 768)
    assert spec.truncation == "nomic" and spec.max_tokens == 8192
    assert dict(spec.prefixes) == {
        "search_query": "search_query: ",
        "search_document": "search_document: ",
        "clustering": "clustering: ",
        "classification": "classification: ",
    }


def test_ollama_nomic_shares_prefixes_and_truncation() -> None:
    spec = resolve("nomic-embed-text")
    assert spec.backend == "ollama" and spec.ollama_name == "nomic-embed-text"
    assert spec.prefixes == NOMIC_PREFIXES and spec.truncation == "nomic"
    assert resolve("ollama:nomic-embed-text") is spec
    assert resolve("ollama:nomic-embed-text:latest") is spec


@pytest.mark.parametrize("name", ["ALL-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_alias_case_and_hub_id_find_the_entry(name: str) -> None:
    assert resolve(name) is REGISTRY["all-minilm-l6-v2"]


def test_unknown_hub_id_gets_an_ad_hoc_spec() -> None:
    spec = resolve("BAAI/bge-small-en-v1.5")
    assert spec.hf_id == "BAAI/bge-small-en-v1.5" and spec.revision is None
    assert spec.prefixes == {} and spec.truncation == "plain" and spec.dimensions is None


def test_ad_hoc_nomic_hub_id_gets_nomic_prefixes() -> None:
    spec = resolve("nomic-ai/nomic-embed-text-v1")
    assert spec.prefixes == NOMIC_PREFIXES and spec.truncation == "nomic"


def test_ad_hoc_ollama_models() -> None:
    plain = resolve("ollama:mxbai-embed-large")
    assert plain.backend == "ollama" and plain.ollama_name == "mxbai-embed-large" and plain.prefixes == {}
    nomic = resolve("ollama:nomic-embed-text:v1.5")
    assert nomic.prefixes == NOMIC_PREFIXES and nomic.truncation == "nomic"


def _folder(tmp_path: Path, name: str, config: dict[str, object], **extra: object) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for filename, content in extra.items():
        (folder / filename.replace("__", ".")).write_text(json.dumps(content))
    return folder


def test_folder_named_nomic_is_nomic_family(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "my-nomic-copy", {"model_type": "bert", "hidden_size": 768})
    spec = resolve(str(folder))
    assert spec.path == str(folder) and spec.prefixes == NOMIC_PREFIXES and spec.truncation == "nomic"
    assert spec.dimensions == 768 and spec.matryoshka_dims == (64, 128, 256, 512, 768)
    assert not spec.requires_remote_code


def test_folder_with_nomic_config_needs_remote_code(tmp_path: Path) -> None:
    config = {
        "model_type": "nomic_bert",
        "architectures": ["NomicBertModel"],
        "auto_map": {"AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
        "n_embd": 768,
    }
    spec = resolve(str(_folder(tmp_path, "weights", config)))
    assert spec.prefixes == NOMIC_PREFIXES and spec.requires_remote_code and spec.dimensions == 768


def test_folder_with_sentence_transformers_prompts(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "e5-copy",
        {"model_type": "bert", "hidden_size": 384},
        config_sentence_transformers__json={"prompts": {"query": "query: ", "document": "passage: "}},
    )
    spec = resolve(str(folder))
    assert dict(spec.prefixes) == {"search_query": "query: ", "search_document": "passage: "}
    assert spec.truncation == "plain"


def test_folder_with_dense_layer_has_unknown_dimensions(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "dense",
        {"model_type": "bert", "hidden_size": 384},
        modules__json=[{"type": "sentence_transformers.models.Dense"}],
    )
    assert resolve(str(folder)).dimensions is None


@pytest.mark.parametrize("name", ["no-such-model", "./missing/folder/x", "", "ollama:"])
def test_unknown_model_lists_aliases(name: str) -> None:
    with pytest.raises(ModelNotAvailableError) as info:
        resolve(name)
    if name not in ("ollama:",):
        assert "all-minilm-l6-v2" in str(info.value) and "nomic-embed-text-v1.5" in str(info.value)


def test_for_backend_switches_between_the_same_weights() -> None:
    st = resolve("nomic-embed-text-v1.5")
    served = for_backend(st, "ollama")
    assert served.backend == "ollama" and served.ollama_name == "nomic-embed-text"
    assert served.prefixes == NOMIC_PREFIXES and served.dimensions == 768
    assert for_backend(resolve("nomic-embed-text"), "sentence-transformers") is st
    minilm = for_backend(resolve("all-minilm-l6-v2"), "ollama")
    assert minilm.ollama_name == "all-minilm" and minilm.dimensions == 384 and minilm.prefixes == {}
    assert for_backend(st, "auto") is st


def test_for_backend_refuses_what_has_no_counterpart() -> None:
    with pytest.raises(ConfigurationError, match="Ollama"):
        for_backend(resolve("BAAI/bge-small-en-v1.5"), "ollama")
    with pytest.raises(ConfigurationError, match="Hugging Face"):
        for_backend(resolve("ollama:mxbai-embed-large"), "sentence-transformers")
    with pytest.raises(ConfigurationError, match="`backend`"):
        for_backend(resolve("all-minilm-l6-v2"), "onnx")

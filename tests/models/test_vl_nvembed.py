"""The NV-Embed-v2 backend through the real SentenceTransformer(..., trust_remote_code=True) path (stand-in).

The stand-in (``standin_vl_text/modeling_standin_nvembed.py``) has NV-Embed-v2's forward contract
(``pool_mask`` argument, ``{"sentence_embeddings": ...}`` output) and its sentence-transformers layout
(``Pooling`` mean with ``include_prompt: false``), with a word-level tokenizer that prepends ``<s>``
and knows ``</s>`` as its EOS token.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._vl_nvembed import DEFAULT_TASK, NVEmbedBackend
from pagesight.models.registry import ModelSpec, resolve_dense_vl

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_vl_text"))

from vl_text_builders import build_tiny_nvembed  # noqa: E402

PREFIX = "Instruct: Given a question, retrieve passages that answer the question\nQuery: "


@pytest.fixture(scope="module")
def nvembed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_nvembed(tmp_path_factory.mktemp("nvembed") / "tiny-nv-embed")


def spec_for(folder: Path, **changes: Any) -> ModelSpec:
    return dataclasses.replace(ModelSpec(alias=str(folder), kind="dense-vl", path=str(folder)), **changes)


@pytest.fixture(scope="module")
def backend(nvembed_dir: Path) -> NVEmbedBackend:
    backend = NVEmbedBackend(spec_for(nvembed_dir), trust_remote_code=True, device="cpu")
    backend.load()
    return backend


@pytest.fixture
def calls(backend: NVEmbedBackend) -> Iterator[list[dict[str, Any]]]:
    """The inputs of every forward call of the remote-code model during the test (its own log)."""
    inner = backend.model[0].model
    inner.calls.clear()
    yield inner.calls
    inner.calls.clear()


def ids_of(backend: NVEmbedBackend, text: str) -> list[int]:
    return list(backend.model.tokenizer(text)["input_ids"])


def real_ids(call: dict[str, Any]) -> list[list[int]]:
    return [
        [int(t) for t, m in zip(row, mask, strict=True) if m]
        for row, mask in zip(call["input_ids"], call["attention_mask"], strict=True)
    ]


def test_loads_through_remote_code(backend: NVEmbedBackend) -> None:
    inner = backend.model[0].model
    assert type(inner).__name__ == "StandinNVEmbedModel"
    assert "transformers_modules" in type(inner).__module__  # imported from the folder's modeling file
    assert backend.model.max_seq_length == 32768
    assert backend.model.tokenizer.padding_side == "right"
    assert backend.native_dimensions == 16
    assert backend.name == "nv-embed"


def test_refuses_without_trust_remote_code(nvembed_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        NVEmbedBackend(spec_for(nvembed_dir), device="cpu").load()


def test_registry_spec_refusal_names_pinned_revision() -> None:
    spec = resolve_dense_vl("nv-embed-v2")
    with pytest.raises(ConfigurationError, match="7604d305b621f14095a1aa23d351674c2859553a"):
        NVEmbedBackend(spec).load()


def test_query_prefix_reaches_model_for_queries_only(
    backend: NVEmbedBackend, calls: list[dict[str, Any]]
) -> None:
    backend.encode_queries(["how do cats sit"])
    backend.encode_documents(["cats sit on mats"])
    assert len(calls) == 2
    eos = backend.model.tokenizer.eos_token
    assert eos == "</s>"
    assert real_ids(calls[0]) == [ids_of(backend, PREFIX + "how do cats sit" + eos)]
    assert real_ids(calls[1]) == [ids_of(backend, "cats sit on mats" + eos)]
    words = backend.model.tokenizer.convert_ids_to_tokens(real_ids(calls[0])[0])
    assert words[:3] == ["<s>", "Instruct", ":"] and words[-1] == "</s>"
    assert "Instruct" not in backend.model.tokenizer.convert_ids_to_tokens(real_ids(calls[1])[0])


def test_eos_appended_and_right_padding(backend: NVEmbedBackend, calls: list[dict[str, Any]]) -> None:
    backend.encode_documents(["cats", "cats sit on red mats of paper", "dogs sit"])
    (call,) = calls
    eos_id = backend.model.tokenizer.eos_token_id
    mask = call["attention_mask"].numpy()
    assert mask.shape[0] == 3 and (mask == 0).any()  # lengths differ, so something is padded
    for row, m in zip(call["input_ids"].numpy(), mask, strict=True):
        n = int(m.sum())
        assert m[:n].all() and not m[n:].any()  # right padding: real tokens first
        assert row[n - 1] == eos_id  # EOS is every input's last real token
        assert (row[:n] == eos_id).sum() == 1


def pooled(backend: NVEmbedBackend, text: str, skip: int) -> np.ndarray:
    """Known answer: the stand-in's per-token output averaged over tokens ``skip:``, then L2-normalized."""
    import torch

    inner = backend.model[0].model
    ids = torch.tensor([ids_of(backend, text)])
    with torch.inference_mode():
        tokens = inner(input_ids=ids, attention_mask=torch.ones_like(ids))["sentence_embeddings"][0]
    mean = tokens[skip:].double().mean(dim=0).numpy()
    out: np.ndarray = mean / np.linalg.norm(mean)
    return out


def test_vectors_match_known_answer(backend: NVEmbedBackend) -> None:
    eos = backend.model.tokenizer.eos_token
    prefix_tokens = len(ids_of(backend, PREFIX))  # <s> + instruction words; left out of the mean
    queries = backend.encode_queries(["how do cats sit", "bake bread"])
    docs = backend.encode_documents(["cats sit on mats", "how do bake bread of paper"])
    np.testing.assert_allclose(
        queries[0], pooled(backend, PREFIX + "how do cats sit" + eos, prefix_tokens), atol=1e-5
    )
    np.testing.assert_allclose(
        queries[1], pooled(backend, PREFIX + "bake bread" + eos, prefix_tokens), atol=1e-5
    )
    np.testing.assert_allclose(docs[0], pooled(backend, "cats sit on mats" + eos, 0), atol=1e-5)
    np.testing.assert_allclose(docs[1], pooled(backend, "how do bake bread of paper" + eos, 0), atol=1e-5)
    # The instruction changes the query's tokens but is not pooled into it.
    with_prompt_pooled = pooled(backend, PREFIX + "how do cats sit" + eos, 0)
    assert not np.allclose(queries[0], with_prompt_pooled, atol=1e-3)


def test_unit_float32_rows_and_determinism(backend: NVEmbedBackend) -> None:
    texts = ["cats", "dogs sit on mats", "red blue paper"]
    a = backend.encode_documents(texts)
    b = backend.encode_documents(texts)
    assert a.dtype == np.float32 and a.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    alone = backend.encode_documents(["dogs sit on mats"])
    np.testing.assert_allclose(alone[0], a[1], atol=1e-5)  # right padding does not change a vector
    assert backend.encode_queries([]).shape == (0, 16)


def test_custom_task_changes_the_instruction(nvembed_dir: Path, backend: NVEmbedBackend) -> None:
    custom = NVEmbedBackend(
        spec_for(nvembed_dir), trust_remote_code=True, device="cpu", task="retrieve pages of paper"
    )
    assert custom.query_prefix == "Instruct: retrieve pages of paper\nQuery: "
    assert NVEmbedBackend(spec_for(nvembed_dir)).query_prefix == f"Instruct: {DEFAULT_TASK}\nQuery: "
    q_custom = custom.encode_queries(["cats"])
    q_default = backend.encode_queries(["cats"])
    assert not np.allclose(q_custom, q_default, atol=1e-4)
    np.testing.assert_allclose(
        custom.encode_documents(["cats"]), backend.encode_documents(["cats"]), atol=1e-6
    )


def test_empty_task_is_refused(nvembed_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="`task`"):
        NVEmbedBackend(spec_for(nvembed_dir), task="  ")


def test_no_images(backend: NVEmbedBackend, nvembed_dir: Path) -> None:
    from PIL import Image

    assert backend.supports_images is False and backend.supports_image_text is False
    image = Image.new("RGB", (8, 8))
    with pytest.raises(ConfigurationError, match=str(nvembed_dir).replace("\\", "\\\\")):
        backend.encode_images([image])
    with pytest.raises(ConfigurationError, match="NV-Embed-v2"):
        backend.encode_image_texts([(image, "cats")])


def test_old_remote_code_names_the_transformers_versions(nvembed_dir: Path, tmp_path: Path) -> None:
    """NV-Embed-v2's modeling file imports MISTRAL_INPUTS_DOCSTRING, gone from transformers >= 4.48."""
    broken = tmp_path / "old-nv-embed"
    shutil.copytree(nvembed_dir, broken)
    modeling = broken / "modeling_standin_nvembed.py"
    future = "from __future__ import annotations\n"
    old_import = "from transformers.models.mistral.modeling_mistral import MISTRAL_INPUTS_DOCSTRING\n"
    modeling.write_text(modeling.read_text().replace(future, future + old_import))
    with pytest.raises(ModelNotAvailableError, match=r"4\.42") as info:
        NVEmbedBackend(spec_for(broken), trust_remote_code=True, device="cpu").load()
    assert "transformers==4.42.4" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_folder_without_remote_code_loads(tmp_path: Path) -> None:
    """The loading path on a plain (no auto_map) folder: no trust needed, same prefix/EOS handling."""
    folder = build_tiny_nvembed(tmp_path / "plain-nv-embed", remote_code=False)
    plain = NVEmbedBackend(spec_for(folder), device="cpu")
    q = plain.encode_queries(["cats sit"])
    d = plain.encode_documents(["cats sit"])
    assert q.shape == d.shape == (1, 16)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(q, d, atol=1e-4)
    assert plain.model[0].modality_config["text"]["method_output_name"] == "last_hidden_state"


def test_through_vl_encoder(nvembed_dir: Path, backend: NVEmbedBackend) -> None:
    vl = pytest.importorskip("pagesight.models.vl")
    encoder = vl.VLEncoder(str(nvembed_dir), backend="nv-embed", trust_remote_code=True, device="cpu")
    assert encoder.backend_name == "nv-embed"
    assert encoder.supports_images is False
    q = encoder.encode_queries(["how do cats sit"])
    d = encoder.encode_documents(["cats sit on mats", "bake bread"])
    assert q.shape == (1, 16) and d.shape == (2, 16) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, d]), axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(q, backend.encode_queries(["how do cats sit"]), atol=1e-5)
    np.testing.assert_allclose(d, backend.encode_documents(["cats sit on mats", "bake bread"]), atol=1e-5)


def check_low_precision(nvembed_dir: Path, reference: NVEmbedBackend, device: str) -> None:
    import torch

    low = NVEmbedBackend(
        spec_for(nvembed_dir),
        trust_remote_code=True,
        device=device,
        dtype=None if device == "cuda" else "bfloat16",
    )
    assert next(low.model[0].model.parameters()).dtype == torch.bfloat16
    texts = ["cats sit on mats", "how do bake bread"]
    for got, want in [
        (low.encode_queries(texts), reference.encode_queries(texts)),
        (low.encode_documents(texts), reference.encode_documents(texts)),
    ]:
        assert got.dtype == np.float32 and np.isfinite(got).all()
        # normalized by sentence-transformers in bf16 (~3 significant digits); VLEncoder renormalizes
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-2)
        assert (got.astype(np.float64) * want).sum(1).min() > 0.98


def test_bfloat16_weights_on_cpu(nvembed_dir: Path, backend: NVEmbedBackend) -> None:
    check_low_precision(nvembed_dir, backend, "cpu")


@pytest.mark.gpu
def test_bfloat16_on_cuda(nvembed_dir: Path, backend: NVEmbedBackend) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    check_low_precision(nvembed_dir, backend, "cuda")

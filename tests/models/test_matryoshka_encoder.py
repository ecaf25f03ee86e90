"""MatryoshkaEncoder on the sentence-transformers backend: real MiniLM and tiny random models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models import DenseTextEncoder, MatryoshkaEncoder, truncate_embeddings

LONG_HEAD = " ".join(f"Sentence {i} describes the harbour, its cranes and its ships." for i in range(60))


class Spy:
    """Records the texts a loaded SentenceTransformer is asked to tokenize."""

    def __init__(self) -> None:
        self.texts: list[str] = []


@pytest.fixture
def spy_on() -> Iterator[Any]:
    patched: list[Any] = []

    def attach(encoder: MatryoshkaEncoder) -> Spy:
        model = encoder.load()._backend.model  # type: ignore[attr-defined]
        spy = Spy()
        original = model.preprocess

        def preprocess(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            spy.texts.extend(inputs)
            return original(inputs, *args, **kwargs)

        model.preprocess = preprocess
        patched.append(model)
        return spy

    yield attach
    for model in patched:
        del model.preprocess


def unit_rows(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


# -- construction -------------------------------------------------------------------------------


def test_import_and_constructor_load_nothing() -> None:
    code = (
        "import sys\n"
        "from pagesight.models import MatryoshkaEncoder\n"
        "import pagesight.integrations\n"
        "e = MatryoshkaEncoder('all-minilm-l6-v2', dimensions=64)\n"
        "e2 = MatryoshkaEncoder('nomic-embed-text-v1.5', dimensions=256)\n"
        "assert e.info.dimensions == 64 and e2.info.model == 'nomic-ai/nomic-embed-text-v1.5'\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'ollama')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dimensions_message_names_both_numbers() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"`dimensions` must be an integer between 1 and 384 for all-minilm-l6-v2, got 1024",
    ):
        MatryoshkaEncoder(dimensions=1024)
    with pytest.raises(ConfigurationError, match="768 for nomic-embed-text-v1.5, got 1000"):
        MatryoshkaEncoder("nomic-embed-text-v1.5", dimensions=1000)
    with pytest.raises(ConfigurationError, match="got 0"):
        MatryoshkaEncoder(dimensions=0)


def test_untrained_matryoshka_size_warns_trained_one_does_not() -> None:
    with pytest.warns(UserWarning, match="trained for dimensions 64, 128, 256, 512, 768"):
        MatryoshkaEncoder("nomic-embed-text-v1.5", dimensions=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MatryoshkaEncoder("nomic-embed-text-v1.5", dimensions=256)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"window_overlap": -1}, "window_overlap"),
        ({"prefixes": {"query": "q"}}, "prefixes"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"`{field}`"):
        MatryoshkaEncoder(**kwargs)


def test_remote_code_model_needs_permission() -> None:
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        MatryoshkaEncoder("nomic-embed-text-v1.5").load()


def test_hub_model_without_hub_says_how_to_get_it() -> None:
    encoder = MatryoshkaEncoder("nomic-embed-text-v1.5", trust_remote_code=True)
    with pytest.raises(ModelNotAvailableError) as info:
        encoder.load()
    message = str(info.value)
    assert (
        "hf download nomic-ai/nomic-embed-text-v1.5 --revision e9b6763023c676ca8431644204f50c2b100d9aab"
        in message
    )
    assert "model='./nomic-embed-text-v1.5'" in message


def test_local_folder_with_remote_code_needs_permission(tiny_plain_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    config = json.loads((tiny_plain_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        MatryoshkaEncoder(str(folder)).encode_documents(["x"])


def test_remote_code_runs_only_when_allowed(tiny_plain_dir: Path, tmp_path: Path) -> None:
    """A stand-in for a remote-code model: ``auto_map`` + local modeling files, the real loader path."""
    folder = tmp_path / "tiny-remote-code"
    shutil.copytree(tiny_plain_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny_rc_bert"
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyConfig",
        "AutoModel": "modeling_tiny.TinyModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_tiny.py").write_text(
        "from transformers import BertConfig\n\n\n"
        "class TinyConfig(BertConfig):\n    model_type = 'tiny_rc_bert'\n"
    )
    (folder / "modeling_tiny.py").write_text(
        "from transformers import BertModel\n\nfrom .configuration_tiny import TinyConfig\n\n\n"
        "class TinyModel(BertModel):\n    config_class = TinyConfig\n"
    )
    with pytest.raises(ConfigurationError, match="trust_remote_code=True"):
        MatryoshkaEncoder(str(folder)).load()
    encoder = MatryoshkaEncoder(str(folder), trust_remote_code=True)
    out = encoder.encode_documents(["hello"])
    assert out.shape == (1, 32)
    assert type(encoder._backend.model[0].model).__name__ == "TinyModel"  # type: ignore[attr-defined]
    plain = MatryoshkaEncoder(str(tiny_plain_dir)).encode_documents(["hello"])
    np.testing.assert_allclose(out, plain, atol=1e-6)  # same weights, loaded through the remote-code class


def test_broken_local_folder_is_model_not_available(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="broken"):
        MatryoshkaEncoder(str(folder)).load()


# -- prefixes -----------------------------------------------------------------------------------


def test_nomic_family_prefixes_reach_the_model(tiny_nomic_dir: Path, spy_on: Any) -> None:
    encoder = MatryoshkaEncoder(str(tiny_nomic_dir))
    spy = spy_on(encoder)
    encoder.encode_queries(["where is the harbour"])
    encoder.encode_documents(["the harbour is north"])
    encoder.encode(["a"], task="clustering")
    encoder.encode(["b"], task="classification")
    assert spy.texts == [
        "search_query: where is the harbour",
        "search_document: the harbour is north",
        "clustering: a",
        "classification: b",
    ]


def test_prefix_changes_the_vector_exactly_as_typed(tiny_nomic_dir: Path) -> None:
    with_prefix = MatryoshkaEncoder(str(tiny_nomic_dir))
    off = {"search_query": "", "search_document": ""}
    without = MatryoshkaEncoder(str(tiny_nomic_dir), prefixes=off)
    doc = with_prefix.encode_documents(["the harbour is north"])
    query = with_prefix.encode_queries(["the harbour is north"])
    np.testing.assert_allclose(
        doc, without.encode_documents(["search_document: the harbour is north"]), atol=1e-6
    )
    np.testing.assert_allclose(
        query, without.encode_queries(["search_query: the harbour is north"]), atol=1e-6
    )
    assert not np.allclose(doc, query, atol=1e-4)


def test_prefix_override(tiny_nomic_dir: Path, spy_on: Any) -> None:
    encoder = MatryoshkaEncoder(str(tiny_nomic_dir), prefixes={"search_query": "query: "})
    spy = spy_on(encoder)
    encoder.encode_queries(["q"])
    encoder.encode_documents(["d"])
    assert spy.texts == ["query: q", "search_document: d"]


def test_no_prefix_for_minilm_or_a_plain_folder(
    minilm: MatryoshkaEncoder, tiny_plain_dir: Path, spy_on: Any
) -> None:
    spy = spy_on(minilm)
    minilm.encode_queries(["q"])
    minilm.encode_documents(["d"])
    assert spy.texts == ["q", "d"]
    plain = MatryoshkaEncoder(str(tiny_plain_dir))
    spy2 = spy_on(plain)
    plain.encode_queries(["q"])
    assert spy2.texts == ["q"]


# -- truncation on real models --------------------------------------------------------------------


def test_nomic_family_truncation_is_layer_norm_then_cut(tiny_nomic_dir: Path) -> None:
    full = MatryoshkaEncoder(str(tiny_nomic_dir))
    cut = MatryoshkaEncoder(str(tiny_nomic_dir), dimensions=8)
    raw = full.load()._backend.embed(["search_document: hello there"], "", 0)
    got = cut.encode_documents(["hello there"])
    np.testing.assert_allclose(got, truncate_embeddings(raw, 8, "nomic"), atol=1e-6)


def test_minilm_dimensions_128(minilm: MatryoshkaEncoder) -> None:
    small = MatryoshkaEncoder(dimensions=128)
    texts = ["a cat sat on the mat", "quarterly revenue grew by ten percent"]
    got = small.encode_documents(texts)
    assert got.shape == (2, 128) and got.dtype == np.float32 and unit_rows(got)
    full = minilm.encode_documents(texts)
    expected = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert small.info.dimensions == 128


# -- real MiniLM ----------------------------------------------------------------------------------


def test_minilm_contract_and_info(minilm: MatryoshkaEncoder) -> None:
    assert isinstance(minilm, DenseTextEncoder)
    info = minilm.info
    assert (info.model, info.dimensions, info.kind) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
        "dense-text",
    )
    assert info.revision == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    out = minilm.encode_documents(["one", "two", "three"])
    assert out.shape == (3, 384) and out.dtype == np.float32 and unit_rows(out)
    assert minilm.encode_queries([]).shape == (0, 384)
    assert MatryoshkaEncoder(dimensions=64).encode_documents([]).shape == (0, 64)


def test_minilm_ranks_the_relevant_sentence_first(minilm: MatryoshkaEncoder) -> None:
    docs = [
        "The invoice total is 1,250 euros, due within thirty days.",
        "Photosynthesis lets plants turn sunlight into chemical energy.",
        "The football match ended in a two-all draw after extra time.",
        "Our office is closed on public holidays.",
    ]
    vectors = minilm.encode_documents(docs)
    for query, best in [
        ("how much do I owe on the bill?", 0),
        ("how do plants get energy from light", 1),
        ("what was the final score of the game", 2),
    ]:
        scores = vectors @ minilm.encode_queries([query])[0]
        assert int(np.argmax(scores)) == best, (query, scores)


def test_bad_inputs(minilm: MatryoshkaEncoder) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        minilm.encode_documents("a bare string")
    with pytest.raises(TypeError):
        minilm.encode_documents([1, 2])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="`task`"):
        minilm.encode(["x"], task="query")


# -- long texts -----------------------------------------------------------------------------------


def test_long_text_is_windowed_not_cut(minilm: MatryoshkaEncoder, spy_on: Any) -> None:
    tokenizer = minilm._backend.model.tokenizer  # type: ignore[attr-defined]
    assert len(tokenizer(LONG_HEAD, add_special_tokens=True, verbose=False)["input_ids"]) > 2 * 256
    a = LONG_HEAD + " In the end the whole town celebrated a fishing festival with music."
    b = LONG_HEAD + " In the end the bank raised interest rates and bond prices fell."
    spy = spy_on(minilm)
    va, vb = minilm.encode_documents([a, b])
    assert float(va @ vb) < 0.9999  # the tail, far beyond the first 256 tokens, changed the vector
    assert all(len(tokenizer(t, add_special_tokens=True)["input_ids"]) <= 256 for t in spy.texts)
    # a's windows (the model sees them sorted by length): overlapping, covering all of a
    spans = sorted((a.find(t), a.find(t) + len(t)) for t in set(spy.texts) if t in a)
    assert len(spans) >= 3
    assert spans[0][0] == 0 and spans[-1][1] == len(a)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start < end  # consecutive windows overlap


def test_long_text_vector_is_the_token_weighted_mean_of_windows(
    minilm: MatryoshkaEncoder, spy_on: Any
) -> None:
    text = LONG_HEAD + " Finally the lighthouse keeper retired."
    spy = spy_on(minilm)
    got = minilm.encode_documents([text])[0]
    windows = list(spy.texts)
    backend: Any = minilm._backend
    tokenizer = backend.model.tokenizer
    raw = backend.embed(windows, "", 0)  # each window alone fits: one vector each, unnormalized
    weights = [len(tokenizer(w, add_special_tokens=False)["input_ids"]) for w in windows]
    expected = truncate_embeddings((raw * np.array(weights)[:, None]).sum(0, keepdims=True), None)
    np.testing.assert_allclose(got, expected[0], atol=1e-5)


def test_prefix_and_special_tokens_fit_in_every_window(tiny_nomic_dir: Path, spy_on: Any) -> None:
    encoder = MatryoshkaEncoder(str(tiny_nomic_dir), window_overlap=8)
    spy = spy_on(encoder)
    text = "internationalization " * 10 + LONG_HEAD[:800]
    out = encoder.encode_documents([text, "short"])
    assert out.shape == (2, 32) and unit_rows(out)
    tokenizer = encoder._backend.model.tokenizer  # type: ignore[attr-defined]
    lengths = [len(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in spy.texts]
    assert len(lengths) > 3 and max(lengths) <= 48
    assert all(t.startswith("search_document: ") for t in spy.texts)


def test_concurrent_first_use_loads_once_and_agrees(tiny_plain_dir: Path) -> None:
    encoder = MatryoshkaEncoder(str(tiny_plain_dir))
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(encoder.encode_documents(["same text", "another text"]))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)

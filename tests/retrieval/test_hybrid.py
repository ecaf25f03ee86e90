"""BM25 tokenization, the BM25 index and score fusion, checked against hand-computed answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagesight.errors import ConfigurationError, StoreError
from pagesight.retrieval.hybrid import DEFAULT_ALPHA, BM25Index, fuse, tokenize

# -- tokenize -------------------------------------------------------------------------------------


def test_tokenize_english_stems_and_drops_stopwords() -> None:
    assert tokenize("How do I mount the USB sticks?") == ["mount", "usb", "stick"]
    assert tokenize("installing installation", stemmer_language=None) == ["installing", "installation"]


def test_tokenize_splits_on_punctuation_not_only_spaces() -> None:
    assert tokenize("read.fwf(file=x); /etc/shadow", stopwords=None, stemmer_language=None) == [
        "read",
        "fwf",
        "file",
        "x",
        "etc",
        "shadow",
    ]


def test_tokenize_german_sharp_s_and_umlauts() -> None:
    opts = {"stemmer_language": "german"}
    assert tokenize("Straße", **opts) == tokenize("STRASSE", **opts) == tokenize("strasse", **opts)
    # casefolding alone (no stemmer) already maps ß to ss
    assert tokenize("Straße", stemmer_language=None) == ["strasse"]
    # umlauts survive casefolding, and composed == decomposed (NFKC)
    assert tokenize("HÄUSER", stemmer_language=None) == ["häuser"]
    assert tokenize("Ha\u0308user", stemmer_language=None) == ["häuser"]
    # the German stemmer maps plural and singular to one stem
    assert tokenize("Häuser", **opts) == tokenize("Haus", **opts)
    # German stopwords are dropped
    assert tokenize("die Straße und das Haus", **opts) == tokenize("Straße Haus", **opts)


def test_tokenize_cjk_runs_become_bigrams() -> None:
    assert tokenize("東京都") == ["東京", "京都"]
    assert tokenize("日") == ["日"]
    assert tokenize("パッケージ") == ["パッ", "ッケ", "ケー", "ージ"]
    assert tokenize("한국어") == ["한국", "국어"]
    # a CJK run next to Latin letters is split from them
    assert tokenize("Debianパッケージ", stemmer_language=None) == ["debian", "パッ", "ッケ", "ケー", "ージ"]


def test_tokenize_nfkc_folds_fullwidth_and_halfwidth() -> None:
    assert tokenize("ＤＥＢＩＡＮ", stemmer_language=None) == ["debian"]
    assert tokenize("ﾊﾟｯｹｰｼﾞ") == tokenize("パッケージ")


def test_tokenize_empty_and_punctuation_only() -> None:
    assert tokenize("") == []
    assert tokenize("  ...  --- !!") == []
    assert tokenize("the of and") == []


def test_tokenize_unknown_language_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="stemmer_language"):
        tokenize("text", stemmer_language="klingon")


# -- BM25Index ------------------------------------------------------------------------------------

CORPUS = {
    "fhs#19": "Removable media such as floppy disks and cdroms are mounted under /media.",
    "fhs#45": "The /var/tmp directory holds temporary files preserved between system reboots.",
    "r#15": "Function read.fwf reads fixed-width-format files whose fields sit in given columns.",
    "ssh#32": "Port forwarding with ssh -L tunnels SMTP and POP3 connections securely.",
    "empty": "",
}


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(list(CORPUS), list(CORPUS.values()))


def test_bm25_ranks_the_page_with_the_terms_first(index: BM25Index) -> None:
    assert index.search("mounting a cdrom", k=3)[0][0] == "fhs#19"
    assert index.search("fixed width files", k=3)[0][0] == "r#15"
    assert index.search("ssh tunnel for pop3", k=3)[0][0] == "ssh#32"
    hits = index.search("temporary files reboot", k=10)
    assert hits[0][0] == "fhs#45"
    # only positive scores, best first, ids unique
    assert all(score > 0 for _, score in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert len({d for d, _ in hits}) == len(hits)
    assert "empty" not in {d for d, _ in hits}


def test_bm25_k_limits_and_empty_queries(index: BM25Index) -> None:
    assert len(index.search("files", k=1)) == 1
    assert index.search("files", k=0) == []
    assert index.search("", k=5) == []
    assert index.search("the of and", k=5) == []  # stopwords only
    assert index.search("zzzunknownword", k=5) == []
    with pytest.raises(ConfigurationError, match="`k`"):
        index.search("files", k=-1)
    assert len(index) == 5


def test_bm25_finds_japanese_and_chinese_substrings_without_spaces() -> None:
    ids = ["ja-net", "ja-pkg", "zh-net", "zh-pkg"]
    texts = [
        "ネットワークの設定はシステム管理の基本です。",
        "パッケージ管理システムはソフトウェアをインストールします。",
        "网络配置是系统管理的基础。",
        "软件包管理器用于安装软件。",
    ]
    index = BM25Index.build(ids, texts)
    assert index.search("ネットワーク設定", k=4)[0][0] == "ja-net"
    assert index.search("パッケージ", k=4)[0][0] == "ja-pkg"
    assert index.search("网络配置", k=4)[0][0] == "zh-net"
    assert index.search("安装软件", k=4)[0][0] == "zh-pkg"


def test_bm25_german_query_matches_sharp_s_spelling() -> None:
    index = BM25Index.build(
        ["a", "b", "c"],
        ["Die Hauptstraße führt zum Bahnhof.", "Der Garten hinter dem Haus.", "Ein Zug fährt ab."],
        stemmer_language="german",
    )
    assert index.search("HAUPTSTRASSE", k=3)[0][0] == "a"
    assert index.search("Häuser", k=3)[0][0] == "b"


def test_bm25_empty_corpus_and_term_free_corpus() -> None:
    empty = BM25Index.build([], [])
    assert len(empty) == 0
    assert empty.search("anything", k=5) == []
    blank = BM25Index.build(["x", "y"], ["", "  ... "])
    assert len(blank) == 2
    assert blank.search("anything", k=5) == []


def test_bm25_build_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="same length"):
        BM25Index.build(["a"], ["x", "y"])
    with pytest.raises(ConfigurationError, match="unique"):
        BM25Index.build(["a", "a"], ["x", "y"])


def test_bm25_save_load_round_trip(index: BM25Index, tmp_path: Path) -> None:
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    assert len(loaded) == len(index)
    assert loaded.ids == index.ids
    assert loaded.fingerprint == index.fingerprint
    for query in ["mounting a cdrom", "fixed width files", "ssh tunnel", "files", ""]:
        assert loaded.search(query, k=10) == index.search(query, k=10)


def test_bm25_save_load_keeps_tokenizer_options(tmp_path: Path) -> None:
    index = BM25Index.build(["a", "b"], ["Die Straße", "Das Haus"], stemmer_language="german", stopwords=None)
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.search("Häuser", k=2) == index.search("Häuser", k=2) != []
    assert loaded.search("die", k=2) == [("a", pytest.approx(index.search("die", k=2)[0][1]))]


def test_bm25_save_load_empty_index(tmp_path: Path) -> None:
    BM25Index.build([], []).save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert len(loaded) == 0
    assert loaded.search("x", k=3) == []


def test_bm25_save_overwrites_an_older_index(tmp_path: Path) -> None:
    BM25Index.build(["old"], ["ancient text about floppies"]).save(tmp_path)
    BM25Index.build(["new1", "new2"], ["fresh text about ssh", "other words"]).save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    assert loaded.ids == ["new1", "new2"]
    assert loaded.search("ssh", k=2)[0][0] == "new1"
    assert loaded.search("floppies", k=2) == []


def test_bm25_fingerprint_tells_when_the_pages_changed(index: BM25Index) -> None:
    ids, texts = list(CORPUS), list(CORPUS.values())
    assert index.fingerprint == BM25Index.fingerprint_of(ids, texts)
    assert index.fingerprint != BM25Index.fingerprint_of(ids, [*texts[:-1], "changed"])
    assert index.fingerprint != BM25Index.fingerprint_of([*ids[:-1], "renamed"], texts)
    assert index.fingerprint != BM25Index.fingerprint_of(ids, texts, stemmer_language=None)
    # length-prefixed: moving a boundary between id and text changes the fingerprint
    assert BM25Index.fingerprint_of(["ab"], ["c"]) != BM25Index.fingerprint_of(["a"], ["bc"])


def test_bm25_load_refuses_a_folder_without_an_index(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no BM25 index"):
        BM25Index.load(tmp_path)
    (tmp_path / "pagesight_bm25.json").write_text(json.dumps({"format": 999}))
    with pytest.raises(StoreError, match="format"):
        BM25Index.load(tmp_path)


# -- fuse -----------------------------------------------------------------------------------------


def test_fuse_weighted_known_answer() -> None:
    dense = [("a", 0.9), ("b", 0.7), ("c", 0.5)]  # min-max -> a 1.0, b 0.5, c 0.0
    sparse = [("c", 10.0), ("d", 6.0), ("b", 2.0)]  # min-max -> c 1.0, d 0.5, b 0.0
    fused = fuse(dense, sparse, alpha=0.4)
    # a 0.4*1 = 0.4; b 0.4*0.5 + 0.6*0 = 0.2; c 0.4*0 + 0.6*1 = 0.6; d 0.6*0.5 = 0.3
    assert [d for d, _ in fused] == ["c", "a", "d", "b"]
    assert [s for _, s in fused] == pytest.approx([0.6, 0.4, 0.3, 0.2])


def test_fuse_weighted_alpha_extremes_reproduce_each_list() -> None:
    dense = [("a", 0.9), ("b", 0.7), ("c", 0.5)]
    sparse = [("c", 10.0), ("d", 6.0), ("b", 2.0)]
    assert [d for d, _ in fuse(dense, sparse, alpha=1.0)][:3] == ["a", "b", "c"]
    # alpha=0: the sparse order; b (the sparse minimum) and a (absent) both score 0, tie broken by id
    assert fuse(dense, sparse, alpha=0.0) == [("c", 1.0), ("d", 0.5), ("a", 0.0), ("b", 0.0)]


def test_fuse_ties_break_by_id_and_unsorted_input_is_fine() -> None:
    dense = [("b", 0.5), ("a", 0.9)]  # unsorted: a 1.0, b 0.0
    sparse = [("a", 1.0), ("b", 3.0)]  # b 1.0, a 0.0
    assert fuse(dense, sparse, alpha=0.5) == [("a", 0.5), ("b", 0.5)]
    assert fuse(list(reversed(dense)), list(reversed(sparse)), alpha=0.5) == [("a", 0.5), ("b", 0.5)]


def test_fuse_single_item_and_equal_scores_normalize_to_one() -> None:
    assert fuse([("a", 0.3)], [], alpha=0.4) == [("a", pytest.approx(0.4))]
    assert fuse([], [("x", 2.0), ("y", 2.0)], alpha=0.4) == [
        ("x", pytest.approx(0.6)),
        ("y", pytest.approx(0.6)),
    ]


def test_fuse_repeated_id_keeps_its_best_score() -> None:
    assert fuse([("a", 0.1), ("a", 0.9), ("b", 0.5)], [], alpha=1.0) == [("a", 1.0), ("b", 0.0)]


def test_fuse_rrf_known_answer() -> None:
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    sparse = [("b", 5.0), ("d", 4.0)]
    fused = fuse(dense, sparse, method="rrf", rrf_k=60)
    expected = {
        "a": 1 / 61,
        "b": 1 / 62 + 1 / 61,
        "c": 1 / 63,
        "d": 1 / 62,
    }
    assert [d for d, _ in fused] == ["b", "a", "d", "c"]
    for doc_id, score in fused:
        assert score == pytest.approx(expected[doc_id])
    # rrf_k = 0: plain reciprocal ranks
    assert fuse([("a", 1.0), ("b", 0.5)], [("b", 1.0)], method="rrf", rrf_k=0) == [
        ("b", pytest.approx(1.5)),
        ("a", pytest.approx(1.0)),
    ]


def test_fuse_k_and_empty_inputs() -> None:
    assert fuse([], []) == []
    assert fuse([], [], method="rrf") == []
    assert len(fuse([("a", 1.0), ("b", 0.5)], [("c", 1.0)], k=2)) == 2
    assert fuse([("a", 1.0)], [("b", 1.0)], k=0) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"k": -1}, "`k`"),
        ({"method": "max"}, "method"),
    ],
)
def test_fuse_rejects_bad_options(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        fuse([("a", 1.0)], [], **kwargs)  # type: ignore[arg-type]


def test_fuse_rejects_non_finite_scores() -> None:
    with pytest.raises(ConfigurationError, match="non-finite"):
        fuse([("a", math.nan)], [])
    with pytest.raises(ConfigurationError, match="sparse"):
        fuse([], [("a", math.inf)])


def test_default_alpha_is_documented() -> None:
    import pagesight.retrieval.hybrid as hybrid

    assert 0.0 < DEFAULT_ALPHA < 1.0
    assert f"alpha={DEFAULT_ALPHA}" in (hybrid.__doc__ or "")


_results = st.lists(
    st.tuples(
        st.text(alphabet="abcdefgh", min_size=1, max_size=2),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(
    dense=_results,
    sparse=_results,
    method=st.sampled_from(["weighted", "rrf"]),
    alpha=st.floats(min_value=0.0, max_value=1.0),
)
def test_fuse_output_is_a_sorted_permutation_of_the_union(
    dense: list[tuple[str, float]], sparse: list[tuple[str, float]], method: str, alpha: float
) -> None:
    fused = fuse(dense, sparse, method=method, alpha=alpha)  # type: ignore[arg-type]
    ids = [d for d, _ in fused]
    assert sorted(ids) == sorted({d for d, _ in dense} | {d for d, _ in sparse})
    keys = [(-s, d) for d, s in fused]
    assert keys == sorted(keys)
    if method == "weighted":
        assert all(-1e-9 <= s <= 1 + 1e-9 for _, s in fused)
    # deterministic: the same inputs in another order give the same output
    assert fuse(list(reversed(dense)), list(reversed(sparse)), method=method, alpha=alpha) == fused  # type: ignore[arg-type]

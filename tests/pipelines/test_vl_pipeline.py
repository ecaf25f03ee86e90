"""Dense vision-language pages end to end: ingest embeds page images (+ text), search and the CLI use them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pagesight.cli import main
from pagesight.pipelines.ingest import ingest
from pagesight.profiles import encoder_for
from pagesight.retrieval.search import PageSearcher
from pagesight.retrieval.store import PageStore

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "standin_embed_vl"))

from vl_builders import build_standin_embed_vl, build_tiny_clip  # noqa: E402


@pytest.fixture(scope="module")
def embed_vl(tmp_path_factory) -> Path:
    return build_standin_embed_vl(tmp_path_factory.mktemp("embed-vl") / "model")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "model")


def test_ingest_embeds_pages_as_image_and_text_and_search_finds_them(tmp_path, corpus, embed_vl):
    from pagesight.models.vl import VLEncoder

    encoder = VLEncoder(str(embed_vl), trust_remote_code=True)
    store = PageStore(tmp_path / "store")
    report = ingest([corpus["network"]], store, encoder, show_progress=False)
    assert report.ok and report.pages_indexed == 3

    calls = encoder._backend.model.calls  # the stand-in's record of what reached the remote code
    forms = sorted((c["modality"], c["n"]) for c in calls if c["method"] == "encode_documents")
    assert forms == [("image", 1), ("image_text", 2)]  # two text pages with images, one drawing
    assert store.embedder == encoder.info and store.embedder.kind == "dense-vl"

    # The drawing page (no text) is found by its own image vector, and nothing else is that close.
    drawing = next(p for p in store.pages() if p.page == 3)
    assert drawing.image is not None
    hits = store.search(encoder.encode_images([drawing.image])[0], 3, embedder=encoder.info)
    assert hits[0].id == drawing.id and hits[0].score > 0.999 > hits[1].score

    searcher = PageSearcher(store, encoder, mode="dense")
    assert {h.page for h in searcher.search("firewall", k=3)} == {1, 2, 3}


def test_a_store_rebuilds_its_vl_encoder_from_what_it_recorded(tmp_path, corpus, clip):
    from pagesight.models.vl import VLEncoder

    encoder = VLEncoder(str(clip))
    store = PageStore(tmp_path / "store")
    assert ingest([corpus["garden"]], store, encoder, show_progress=False).ok
    recorded = store.embedder
    assert recorded is not None
    rebuilt = encoder_for(recorded)
    assert isinstance(rebuilt, VLEncoder) and rebuilt.info == recorded
    np.testing.assert_allclose(rebuilt.encode_queries(["tomatoes"]), encoder.encode_queries(["tomatoes"]))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_indexes_with_a_vl_model_and_refuses_page_input_for_text_models(tmp_path, corpus, clip, capsys):
    store = tmp_path / "store"
    code, _, err = _run(
        capsys, "index", str(corpus["garden"]), "--store", str(store), "--model", str(clip),
        "--embedder", "vl", "--page-input", "image", "-q",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = _run(capsys, "sources", "--store", str(store))
    assert "dense-vl" in out
    code, out, err = _run(capsys, "search", "tomatoes", "--store", str(store), "--mode", "dense", "--json")
    assert code == 0, err
    assert {h["page"] for h in json.loads(out)} == {1, 2}

    code, _, err = _run(
        capsys, "index", str(corpus["garden"]), "--store", str(tmp_path / "s2"), "--page-input", "image", "-q"
    )
    assert code == 2 and "--page-input" in err

"""The web app's handlers, called directly (no browser): index uploads and URLs, ask, open a page."""

from __future__ import annotations

import argparse
import re
import socket
import sys
from pathlib import Path

import pytest

from pagesight.errors import ConfigurationError
from pagesight.ui.app import on_ask, on_index, on_select, sources_rows
from pagesight.ui.command import add_serve_parser, cmd_serve, no_auth_warning
from pagesight.ui.state import App
from tests.http_server import LoopbackHTTPServer, Route
from tests.pipelines.conftest import write_pdf
from tests.ui.conftest import FACT, QUESTION

CAPTION = re.compile(r"^(?P<file>.+) p\.(?P<page>\d+) · (?P<score>-?\d+\.\d{3})(?P<cited> · cited)?$")


def run_index(app: App, files, urls: str = "", progress=None) -> str:
    steps = list(on_index(app, [str(f) for f in files], urls, progress))
    return steps[-1][0]


def final(app: App, question: str):
    views = list(on_ask(app, question))
    assert views[-1].done
    return views


def test_index_good_and_corrupt_pdfs_then_ask_cites_the_right_page(tmp_path, uploads):
    app = App(tmp_path / "store")
    progress: list[tuple[tuple[int, int], str]] = []
    log = run_index(
        app,
        [uploads["lighthouse"], uploads["garden"], uploads["broken"]],
        progress=lambda value, desc, unit: progress.append((value, desc)),
    )
    # the progress bar follows sources and the pages embedded within each
    assert ((0, 3), "source 1/3 (lighthouse.pdf)") in progress
    assert ((0, 3), "source 1/3 (lighthouse.pdf): 2 pages embedded") in progress
    assert ((1, 3), "source 2/3 (garden.pdf): 1 page embedded") in progress
    assert ((2, 3), "source 3/3 (broken.pdf)") in progress

    lines = log.splitlines()
    assert lines[0].startswith("new store: auto chose ")  # which profile picked the embedder
    assert "indexed    lighthouse.pdf (2 pages)" in lines
    assert "indexed    garden.pdf (1 page)" in lines
    failed = [line for line in lines if line.startswith("failed")]
    assert len(failed) == 1 and failed[0].startswith("failed     broken.pdf: ")
    assert "damaged" in failed[0] and "Traceback" not in log
    assert lines[-1] == "done: 2 indexed, 0 unchanged, 1 failed"

    # exactly the good pages, under the user's file names; no trace of the corrupt upload
    uploads_dir = tmp_path / "store" / "uploads"
    assert {(s.source, s.pages) for s in app.sources()} == {
        (str(uploads_dir / "lighthouse.pdf"), 2),
        (str(uploads_dir / "garden.pdf"), 1),
    }
    assert app.store.count() == 3
    assert sorted(p.name for p in uploads_dir.iterdir()) == ["garden.pdf", "lighthouse.pdf"]
    assert sorted(sources_rows(app)) == [["garden.pdf", 1], ["lighthouse.pdf", 2]]

    views = final(app, QUESTION)
    first, last = views[0], views[-1]
    assert first.gallery and not first.done  # the pages are shown before the answer is written
    assert FACT in last.answer
    assert "[lighthouse.pdf p.2]" in last.answer
    assert "[lighthouse.pdf p.2](/gradio_api/file=" in last.citations
    assert "not retrieved" not in last.citations

    # gallery: existing page images, captions "<file> p.<N> · <score>", best first, the cited page marked
    assert last.gallery is not None and len(last.gallery) == len(last.hits) == 3
    captions = [CAPTION.match(c) for _, c in last.gallery]
    assert all(captions), [c for _, c in last.gallery]
    for (image, _), hit in zip(last.gallery, last.hits, strict=True):
        assert Path(image).is_file() and Path(image) == hit.image
        assert Path(image).resolve().is_relative_to(app.image_dir)
    scores = [h.score for h in last.hits]
    assert scores == sorted(scores, reverse=True)
    assert [float(m["score"]) for m in captions] == [round(s, 3) for s in scores]
    top = captions[0]
    assert (top["file"], top["page"], bool(top["cited"])) == ("lighthouse.pdf", "2", True)
    assert not any(m["cited"] for m in captions[1:] if m["file"] == "garden.pdf")

    # clicking a thumbnail opens that page large
    image, note = on_select(app, last.hits, 0, QUESTION, False)
    assert image == str(last.hits[0].image) and "lighthouse.pdf p.2" in note

    # indexing the same file again is a no-op
    log = run_index(app, [uploads["lighthouse"]])
    assert "unchanged  lighthouse.pdf (2 pages)" in log.splitlines()
    assert app.store.count() == 3


@pytest.mark.enable_socket
def test_url_indexes_and_a_dead_url_fails_with_a_clear_message(tmp_path):
    pdf = write_pdf(tmp_path / "memo.pdf", ["The quarterly memo says the Korrin bridge reopens on 12 March."])
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/gone.pdf"
    app = App(tmp_path / "store")
    with LoopbackHTTPServer({"/memo.pdf": Route(pdf.read_bytes(), content_type="application/pdf")}) as server:
        good = server.url("/memo.pdf")
        log = run_index(app, [], f"{good}\n\n{dead}\nfile:///etc/passwd\n")
    lines = log.splitlines()
    assert f"indexed    {good} (1 page)" in lines
    dead_line = next(line for line in lines if dead in line)
    assert dead_line.startswith(f"failed     {dead}: ")
    assert "Traceback" not in log and len(dead_line) > len(f"failed     {dead}: ") + 10
    assert "failed     file:///etc/passwd: not an http(s) URL" in log
    assert [(s.source, s.pages) for s in app.sources()] == [(good, 1)]
    assert sources_rows(app) == [[good, 1]]
    last = final(app, "When does the Korrin bridge reopen?")[-1]
    assert "[memo.pdf p.1]" in last.answer and "12 March" in last.answer


def test_a_bad_reupload_keeps_the_previous_version(tmp_path, uploads):
    app = App(tmp_path / "store")
    run_index(app, [uploads["garden"]])
    original = (tmp_path / "store" / "uploads" / "garden.pdf").read_bytes()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "garden.pdf").write_bytes(b"%PDF-1.4 truncated")
    log = run_index(app, [newer / "garden.pdf"])
    assert log.splitlines()[0].startswith("failed     garden.pdf: ")
    uploads_dir = tmp_path / "store" / "uploads"
    assert (uploads_dir / "garden.pdf").read_bytes() == original
    assert sorted(p.name for p in uploads_dir.iterdir()) == ["garden.pdf"]  # no temp or backup files
    assert [(Path(s.source).name, s.pages) for s in app.sources()] == [("garden.pdf", 1)]


def test_unsupported_files_and_empty_input_are_reported_not_raised(tmp_path):
    app = App(tmp_path / "store")
    doc = tmp_path / "notes.docx"
    doc.write_bytes(b"PK\x03\x04")
    log = run_index(app, [doc])
    assert log.splitlines()[1].startswith("failed     notes.docx: unsupported file type '.docx'")
    assert ".pdf" in log
    assert "Nothing to index" in run_index(app, [], "  \n")


def test_asking_an_empty_store_says_to_add_documents(tmp_path):
    app = App(tmp_path / "store")
    views = list(on_ask(app, "anything?"))
    assert len(views) == 1 and views[0].done
    assert "empty" in views[0].answer and "add documents" in views[0].answer
    assert "type a question" in list(on_ask(app, "   "))[-1].answer


def test_unknown_generator_is_an_error_message_not_a_traceback(tmp_path, uploads):
    app = App(tmp_path / "store", generator="gpt:5")
    run_index(app, [uploads["garden"]])
    last = list(on_ask(app, "tomatoes?"))[-1]
    assert last.answer.startswith("**Error:**") and "unknown generator 'gpt:5'" in last.answer


def test_late_interaction_store_offers_heatmaps(tmp_path, uploads):
    app = App(tmp_path / "store", profile="offline-late")
    assert app.late_interaction  # known before anything is indexed: the profile's model is late interaction
    log = run_index(app, [uploads["lighthouse"]])
    assert "indexed    lighthouse.pdf (2 pages)" in log
    assert app.store.embedder is not None and app.store.embedder.kind == "late-interaction"
    last = final(app, QUESTION)[-1]
    assert "[lighthouse.pdf p.2]" in last.answer
    hit = last.hits[0]
    image, note = on_select(app, last.hits, 0, QUESTION, True)
    assert "lighthouse.pdf p.2" in note
    try:
        import pagesight.retrieval.heatmap  # noqa: F401
    except ImportError:
        assert image == str(hit.image) and "not available" in note
    else:
        from PIL import Image

        assert isinstance(image, Image.Image), note
        assert image.size == (hit.width, hit.height)


def test_dense_store_has_no_heatmap(tmp_path, uploads):
    app = App(tmp_path / "store")
    run_index(app, [uploads["garden"]])
    assert not app.late_interaction
    hit = app.store.pages()[0]
    image, note = on_select(app, [hit], 0, "tomatoes", True)
    assert image == str(hit.image) and "late-interaction" in note


def test_serve_parser_defaults_and_the_no_auth_warning(monkeypatch):
    monkeypatch.setenv("PAGESIGHT_STORE", "/data/index")
    parser = argparse.ArgumentParser(prog="pagesight")
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.store, args.host, args.port, args.k) == ("/data/index", "127.0.0.1", 7860, 5)
    assert args.generator is None and args.profile is None
    assert args.func is cmd_serve
    args = parser.parse_args(["serve", "--port", "0", "--generator", "ollama:gemma3:4b", "--reranker=none"])
    assert (args.port, args.generator, args.reranker) == (0, "ollama:gemma3:4b", "none")
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--share"])
    assert no_auth_warning("127.0.0.1") is None and no_auth_warning("localhost") is None
    warning = no_auth_warning("0.0.0.0")
    assert warning is not None and "no authentication" in warning


def test_serve_without_gradio_exits_2_with_the_install_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # what an environment without gradio gives
    parser = argparse.ArgumentParser(prog="pagesight")
    add_serve_parser(parser.add_subparsers(dest="command"))
    assert cmd_serve(parser.parse_args(["serve"])) == 2
    assert 'pip install "pagesight[ui]"' in capsys.readouterr().err


@pytest.mark.enable_socket
def test_ollama_answer_streams_into_the_app_with_page_images(tmp_path, uploads):
    from tests.ollama_double import ChatModel, OllamaDouble

    with OllamaDouble({}, chat_models={"qwen2.5vl:3b": ChatModel(vision=True)}) as server:
        app = App(tmp_path / "store", generator="ollama:qwen2.5vl:3b", ollama_host=server.url)
        run_index(app, [uploads["lighthouse"], uploads["garden"]])
        views = final(app, QUESTION)
        chat = server.chats[-1]
        images = server.chat_images[-1]
    texts = [v.answer for v in views[1:-1]]
    assert len(texts) >= 3  # the answer arrived piece by piece
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert all(v.gallery is None for v in views[1:-1])  # the gallery is not resent per piece
    last = views[-1]
    # the double answers with the first sentence of the page that shares most words with the question
    assert last.answer == texts[-1] == "Lighthouse duties. [lighthouse.pdf p.2]"
    assert "lighthouse.pdf p.2" in last.citations and "· cited" in last.gallery[0][1]
    assert chat["stream"] is True and images  # a vision model got the page images
    assert "Page [lighthouse.pdf p.2]" in chat["messages"][-1]["content"]


@pytest.mark.enable_socket
def test_ollama_not_running_is_an_error_message(tmp_path, uploads):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = App(tmp_path / "store", generator="ollama:llama3.2", ollama_host=host)
    run_index(app, [uploads["garden"]])
    last = list(on_ask(app, "Why stake tomato plants?"))[-1]
    assert last.done and last.answer.startswith("**Error:**")
    assert host.split("//")[1] in last.answer and "Traceback" not in last.answer


def test_the_ui_modules_import_without_gradio_or_other_extras():
    from tests.test_imports import run_without_extras

    proc = run_without_extras(
        """
        import argparse
        import pagesight.ui, pagesight.ui.app, pagesight.ui.command, pagesight.ui.state
        parser = argparse.ArgumentParser()
        pagesight.ui.command.add_serve_parser(parser.add_subparsers())
        try:
            pagesight.ui.build_app("unused-store")
        except ImportError as e:
            print("NO-GRADIO", e)
        print("HEAVY", sorted(m for m in sys.modules if m.split(".")[0] in HEAVY))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert 'NO-GRADIO gradio is not installed; install it with: pip install "pagesight[ui]"' in proc.stdout
    assert "HEAVY []" in proc.stdout


@pytest.mark.enable_socket
def test_citations_of_pages_not_retrieved_are_flagged(tmp_path, uploads):
    from tests.ollama_double import ChatModel, OllamaDouble

    def invents(messages):
        return "Stake them [garden.pdf p.1], as the almanac says [almanac.pdf p.9]."

    with OllamaDouble({}, chat_models={"llama3.2": ChatModel(respond=invents)}) as server:
        app = App(tmp_path / "store", generator="ollama:llama3.2", ollama_host=server.url)
        run_index(app, [uploads["garden"]])
        last = final(app, "Why stake tomato plants?")[-1]
    assert "- [garden.pdf p.1](/gradio_api/file=" in last.citations
    warning = last.citations.splitlines()[-1]
    assert (
        warning.startswith("⚠️ The answer cites pages that were not retrieved")
        and "[almanac.pdf p.9]" in warning
    )


def test_the_log_shows_the_sources_own_warnings_not_other_threads(tmp_path):
    import warnings

    from pagesight.models.matryoshka import MatryoshkaEncoder

    class NoisyEncoder:
        """Warns like gradio's and pandas' code does in other threads while a source is indexed."""

        def __init__(self) -> None:
            self.inner = MatryoshkaEncoder("all-minilm-l6-v2")

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_pages(self, pages):
            warnings.warn("'future.no_silent_downcasting' is deprecated", DeprecationWarning, stacklevel=1)
            warnings.warn(
                "Expected 4 arguments for function <lambda>, received 3.", UserWarning, stacklevel=1
            )
            return self.inner.encode_pages(pages)

    scan = write_pdf(tmp_path / "scan.pdf", ["A page with text about harbour tides and ferries.", None])
    app = App(tmp_path / "store")
    app._encoder = NoisyEncoder()
    log = run_index(app, [scan])
    assert "indexed    scan.pdf (2 pages)" in log
    assert (
        "    warning: scan.pdf: 1 page(s) have no text layer and OCR found no text on them (page 2); "
        "indexed as images only"
    ) in log.splitlines()
    assert "deprecated" not in log and "Expected 4 arguments" not in log
    assert str(tmp_path / "store" / "uploads") not in log


def test_the_app_applies_loader_limits_and_refuses_private_urls_by_default(tmp_path, uploads, monkeypatch):
    monkeypatch.delenv("PAGESIGHT_ALLOW_PRIVATE_URLS", raising=False)  # the default a real server has
    strict = App(tmp_path / "store", loader_options={"max_pages": 1})
    log = run_index(strict, [uploads["lighthouse"]])  # two pages
    assert "failed     lighthouse.pdf: " in log and "max_pages=1" in log, log
    assert strict.sources() == []
    pdf = write_pdf(tmp_path / "memo.pdf", ["The Korrin bridge reopens on 12 March."])
    with LoopbackHTTPServer({"/memo.pdf": Route(pdf.read_bytes(), content_type="application/pdf")}) as server:
        url = server.url("/memo.pdf")
        log = run_index(App(tmp_path / "store"), [], url)
        assert f"failed     {url}: " in log and "--allow-private-urls" in log, log
        assert server.requests == []  # refused before connecting
        trusting = App(tmp_path / "store", loader_options={"allow_private": True})
        assert f"indexed    {url} (1 page)" in run_index(trusting, [], url)
    assert [(s.source, s.pages) for s in trusting.sources()] == [(url, 1)]


@pytest.mark.enable_socket
def test_uploads_over_the_size_limit_are_refused_by_the_server(tmp_path):
    import httpx

    from pagesight.ui.app import build_app, launch

    demo = build_app(tmp_path / "store", max_upload_bytes=1000)
    url = launch(demo, "127.0.0.1", 0, block=False, quiet=True)
    try:
        upload = url.rstrip("/") + "/gradio_api/upload"
        small = httpx.post(upload, files={"files": ("a.pdf", b"%PDF-" + b"x" * 500)}, timeout=30)
        assert small.status_code == 200, small.text
        big = httpx.post(upload, files={"files": ("b.pdf", b"%PDF-" + b"x" * 5000)}, timeout=30)
        assert big.status_code == 413 and "maximum allowed size" in big.text
    finally:
        demo.close()
    with pytest.raises(ConfigurationError, match="max_upload_bytes"):
        App(tmp_path / "store", max_upload_bytes=0)


def test_serve_passes_the_limit_flags_on(monkeypatch):
    from pagesight.cli import loader_limits

    parser = argparse.ArgumentParser(prog="pagesight")
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert args.max_upload_mb == 256 and loader_limits(args) == {}
    args = parser.parse_args(
        ["serve", "--max-upload-mb", "5", "--max-pages", "3", "--max-bytes", "1000", "--allow-private-urls"]
    )
    assert args.max_upload_mb == 5
    assert loader_limits(args) == {"max_pages": 3, "max_bytes": 1000, "allow_private": True}
    with pytest.raises(ConfigurationError, match="--max-pixels must be at least 1"):
        loader_limits(parser.parse_args(["serve", "--max-pixels", "0"]))


@pytest.mark.enable_socket
def test_launch_prints_the_url_but_not_gradios_share_hint(tmp_path, capfd):
    from pagesight.ui.app import build_app, launch

    demo = build_app(tmp_path / "store")
    capfd.readouterr()
    url = launch(demo, "127.0.0.1", 0, block=False)
    try:
        out, err = capfd.readouterr()
    finally:
        demo.close()
    assert url.startswith("http://127.0.0.1:")
    assert url in out
    assert "share=True" not in out + err and "public link" not in out + err

"""The Gradio app behind ``pagesight serve``: add documents, ask, see the cited pages.

::

    from pagesight.ui import build_app, serve

    demo = build_app("index/", generator="ollama:gemma3:4b")   # a gradio.Blocks
    serve("index/", port=7860)                                 # build and serve on 127.0.0.1

The handlers are plain functions of an :class:`~pagesight.ui.state.App` (``on_index``,
``on_ask``, ``on_select``) returning strings, lists and images; :func:`build_app` only lays out the
components and wires them. The app binds to loopback by default; ``launch(..., auth=[(user,
password)])`` (``pagesight serve --auth``) puts Gradio's login page in front of it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight._deps import require
from pagesight.documents.sources import SUPPORTED_EXTENSIONS
from pagesight.errors import ConfigurationError, PagesightError
from pagesight.pipelines.answer import page_reference, source_name
from pagesight.ui.state import (
    DEFAULT_MAX_UPLOAD_BYTES,
    App,
    AskStep,
    EmptyStoreError,
    IndexStep,
    caption,
    file_url,
    log_line,
)

if TYPE_CHECKING:
    from PIL import Image

    from pagesight.retrieval.store import Hit

__all__ = [
    "AskView",
    "build_app",
    "launch",
    "on_ask",
    "on_index",
    "on_select",
    "serve",
    "sources_rows",
]

logger = logging.getLogger(__name__)

UPLOAD_TYPES = sorted(SUPPORTED_EXTENSIONS)  # one list: what the loaders accept
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

ProgressFn = Callable[..., Any]


def _error_text(e: BaseException) -> str:
    if isinstance(e, PagesightError):
        return str(e)
    return f"unexpected error ({type(e).__name__}): {e}"


# -- handlers (no gradio needed) -----------------------------------------------------------------


def sources_rows(app: App) -> list[list[Any]]:
    """Rows ``[name, pages]`` of the sources table (uploads by file name, URLs in full)."""
    uploads = str(app.uploads_dir.resolve())
    rows = []
    for s in app.sources():
        inside = str(Path(s.source).resolve()).startswith(uploads) if "://" not in s.source else False
        rows.append([source_name(s.source) if inside else s.source, s.pages])
    return rows


def on_index(
    app: App,
    files: Sequence[str | Path] | None,
    urls: str | None,
    progress: ProgressFn | None = None,
) -> Iterator[tuple[str, list[list[Any]]]]:
    """Index uploads and URLs, yielding ``(log, sources table)`` as each source starts and ends.

    The log has one line per finished source: ``indexed``, ``unchanged`` or ``failed`` with the
    error message. A problem that stops the whole run (the model cannot be loaded) ends the log
    with ``error: ...``; nothing raises.
    """
    lines: list[str] = []
    if not files and not (urls or "").strip():
        yield "Nothing to index: choose files or type URLs (one per line).", sources_rows(app)
        return
    current = IndexStep(0, 0, "")

    def pages_done(name: str, pages: int) -> None:
        if progress is not None:
            plural = "s" if pages != 1 else ""
            desc = f"source {current.done + 1}/{current.total} ({name}): {pages} page{plural} embedded"
            progress((current.done, current.total), desc=desc, unit="sources")

    try:
        for step in app.index_steps(files, urls, on_pages=pages_done):
            current = step
            if step.note:
                lines.append(step.note)
            if step.result is None:
                if progress is not None:
                    desc = f"source {step.done + 1}/{step.total} ({step.name})"
                    progress((step.done, step.total), desc=desc, unit="sources")
                yield "\n".join([*lines, f"indexing {step.name} ..."]), sources_rows(app)
                continue
            lines.append(log_line(step))
            yield "\n".join(lines), sources_rows(app)
    except Exception as e:  # a run-wide failure (model, store): say so in the log, not as a traceback
        if not isinstance(e, PagesightError):
            logger.exception("indexing failed")
        lines.append(f"error: {_error_text(e)}")
        yield "\n".join(lines), sources_rows(app)
        return
    n = {s: sum(line.startswith(s) for line in lines) for s in ("indexed", "unchanged", "failed")}
    lines.append(f"done: {n['indexed']} indexed, {n['unchanged']} unchanged, {n['failed']} failed")
    yield "\n".join(lines), sources_rows(app)


@dataclass(frozen=True, slots=True)
class AskView:
    """What the Ask panel shows at one moment.

    Attributes:
        answer: the answer (Markdown), or an error message.
        citations: the cited pages as Markdown links to the page images, and any warning about
            citations that match no retrieved page.
        gallery: ``(image path, caption)`` per retrieved page with an image, best first, or
            ``None`` when the gallery did not change since the previous view.
        hits: the retrieved pages with an image, in gallery order (for opening one large).
        done: whether the answer is finished.
    """

    answer: str
    citations: str
    gallery: list[tuple[str, str]] | None
    hits: list[Hit]
    done: bool = False


def _gallery(step: AskStep) -> tuple[list[tuple[str, str]], list[Hit]]:
    cited = {(c.source, c.page) for c in step.answer.citations} if step.answer else set()
    shown = [h for h in step.retrieved if h.image is not None and Path(h.image).is_file()]
    items = [(str(h.image), caption(h, cited=(h.source, h.page) in cited)) for h in shown]
    return items, shown


def _citations_markdown(step: AskStep) -> str:
    result = step.answer
    if result is None:
        return ""
    lines = []
    if result.citations:
        lines.append("**Cited pages**")
        for c in sorted(result.citations, key=lambda c: -c.score):  # the best page first
            label = page_reference(c.source, c.page, c.page_label)
            link = f"[{label}]({file_url(c.image)})" if c.image else label
            lines.append(f"- {link} · score {c.score:.3f}")
    elif result.retrieved:
        lines.append("_The answer cites no retrieved page._")
    if result.unmatched_citations:
        lines.append(
            "⚠️ The answer cites pages that were not retrieved: " + ", ".join(result.unmatched_citations)
        )
    if not result.retrieved:
        lines.append("_No indexed page matched the question._")
    return "\n".join(lines)


def on_ask(app: App, question: str) -> Iterator[AskView]:
    """Answer ``question``: the retrieved pages first, then the answer as it is written.

    Errors (nothing indexed, Ollama not running, a model missing) become the answer text with
    the message saying what to do; nothing raises.
    """
    try:
        last_text: str | None = None
        for step in app.ask_steps(question):
            if step.answer is None and step.text == "":  # pages retrieved, answer not yet started
                items, shown = _gallery(step)
                yield AskView("_Writing the answer…_", "", items, shown)
                continue
            if step.answer is None:
                if step.text != last_text:
                    last_text = step.text
                    yield AskView(step.text, "", None, [])
                continue
            items, shown = _gallery(step)
            yield AskView(step.text, _citations_markdown(step), items, shown, done=True)
    except EmptyStoreError as e:
        yield AskView(str(e), "", [], [], done=True)
    except Exception as e:
        if not isinstance(e, PagesightError):
            logger.exception("answering %r failed", question)
        yield AskView(f"**Error:** {_error_text(e)}", "", None, [], done=True)


def on_select(
    app: App, hits: Sequence[Hit], index: int | None, question: str, heatmap: bool
) -> tuple[str | Image.Image | None, str]:
    """The page at gallery position ``index`` for the large view (with the heatmap when asked), and a note."""
    if index is None or not 0 <= index < len(hits):
        return None, ""
    hit = hits[index]
    title = f"**{page_reference(hit.source, hit.page, hit.page_label)}** · score {hit.score:.3f}"
    if not heatmap:
        return (str(hit.image) if hit.image else None), title
    try:
        image, note = app.heatmap(question, hit)
    except Exception as e:
        if not isinstance(e, PagesightError):
            logger.exception("heatmap failed")
        image, note = None, f"No heatmap: {_error_text(e)}"
    if image is None:
        return (str(hit.image) if hit.image else None), f"{title}\n\n{note}"
    return image, f"{title}\n\n{note}"


# -- layout ------------------------------------------------------------------------------------

_CSS = """
#answer { min-height: 3em; }
#index-log textarea { font-family: ui-monospace, monospace; font-size: 0.85em; }
"""


def build_app(
    store: str | Path,
    *,
    profile: str | None = None,
    generator: str | None = "extractive",
    ollama_host: str | None = None,
    reranker: str | None = None,
    k: int = 5,
    trust_remote_code: bool = False,
    loader_options: Mapping[str, Any] | None = None,
    max_upload_bytes: int | None = DEFAULT_MAX_UPLOAD_BYTES,
    store_options: Mapping[str, Any] | None = None,
) -> Any:
    """Build the web app for the store at ``store`` (a ``gradio.Blocks``; launch it with :func:`launch`).

    Args:
        store: store folder (created on first index) or Chroma server URL.
        profile: for a new store, the stack that indexes uploads (default: auto -> ``offline``
            without a ready GPU); a named profile also supplies the generator and reranker
            when those are ``None``.
        generator: ``extractive``, ``ollama:<model>`` or ``hf:<model>``.
        ollama_host: Ollama server for ``ollama:`` generators.
        reranker: reranker name or ``"none"``.
        k: pages retrieved per question.
        trust_remote_code: allow models' own code (NVIDIA models).
        loader_options: limits and options for indexed files and URLs (``max_pages``,
            ``max_bytes``, ``allow_private``, ...; see :class:`~pagesight.ui.state.App`).
        max_upload_bytes: largest file the browser may upload (256 MiB); ``None`` for no limit.
        store_options: for a Chroma server store: ``headers``, ``tenant``, ``database``.

    Raises:
        MissingDependencyError: gradio is not installed (``pip install "pagesight[ui]"``).

    Example:
        >>> demo = build_app("index/")  # doctest: +SKIP
        >>> url = launch(demo, port=0, block=False)  # doctest: +SKIP
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    gr = require("gradio", "ui")
    app = App(
        store,
        profile=profile,
        generator=generator,
        ollama_host=ollama_host,
        reranker=reranker,
        k=k,
        trust_remote_code=trust_remote_code,
        loader_options=loader_options,
        max_upload_bytes=max_upload_bytes,
        store_options=store_options,
    )
    late = app.late_interaction

    progress_bar = gr.Progress()  # gradio hands the handler a live one through this default

    def index_event(files: list[str] | None, urls: str, progress: Any = progress_bar) -> Iterator[Any]:
        for log, rows in on_index(app, files, urls, progress):
            yield log, rows, gr.update(visible=app.late_interaction), app.describe()

    def ask_event(question: str) -> Iterator[Any]:
        for view in on_ask(app, question):
            gallery = gr.skip() if view.gallery is None else view.gallery
            hits = gr.skip() if view.gallery is None else view.hits
            page = (None, "") if view.gallery is not None else (gr.skip(), gr.skip())
            yield view.answer, view.citations, gallery, hits, question, *page

    def select_event(hits: list[Hit], question: str, heatmap: bool, evt: Any) -> Any:
        image, note = on_select(app, hits, evt.index, question, heatmap)
        return image, note, evt.index

    # gradio passes the selection to the parameter annotated SelectData, found with
    # typing.get_type_hints: postponed annotations naming local or TYPE_CHECKING imports would not resolve
    select_event.__annotations__ = {"evt": gr.SelectData}

    def heatmap_event(hits: list[Hit], question: str, heatmap: bool, index: int | None) -> Any:
        return on_select(app, hits, index, question, heatmap)

    with gr.Blocks(title="pagesight", analytics_enabled=False) as demo:
        gr.Markdown("## pagesight\nSearch and question your PDFs, web pages and images; answers cite pages.")
        status = gr.Markdown(app.describe(), elem_id="status")
        hits_state = gr.State([])
        question_state = gr.State("")
        selected_state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                gr.Markdown("### Add documents")
                files = gr.File(
                    label="PDFs or images",
                    file_count="multiple",
                    file_types=UPLOAD_TYPES,
                    type="filepath",
                    elem_id="upload",
                )
                urls = gr.Textbox(
                    label="URLs (one per line)", lines=2, placeholder="https://…", elem_id="urls"
                )
                index_btn = gr.Button("Index", variant="primary", elem_id="index-button")
                log = gr.Textbox(
                    label="Indexing log", lines=6, max_lines=20, interactive=False, elem_id="index-log"
                )
                sources = gr.Dataframe(
                    value=sources_rows(app),
                    headers=["source", "pages"],
                    datatype=["str", "number"],
                    interactive=False,
                    label="Indexed sources",
                    elem_id="sources",
                )
            with gr.Column(scale=2, min_width=400):
                gr.Markdown("### Ask")
                with gr.Row():
                    question = gr.Textbox(
                        label="Question", placeholder="Ask about your documents", scale=5, elem_id="question"
                    )
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, elem_id="ask-button")
                answer_md = gr.Markdown(line_breaks=True, elem_id="answer")
                citations_md = gr.Markdown(elem_id="citations")
                gallery = gr.Gallery(
                    label="Retrieved pages (click one to open it large)",
                    columns=5,
                    height="auto",
                    object_fit="contain",
                    allow_preview=False,
                    elem_id="pages",
                )
                heatmap = gr.Checkbox(
                    label="Heatmap: show where the question matched the page (late-interaction stores)",
                    value=False,
                    visible=late,
                    elem_id="heatmap",
                )
                page_note = gr.Markdown(elem_id="page-note")
                page_view = gr.Image(label="Page", type="filepath", interactive=False, elem_id="page-view")

        index_btn.click(
            index_event,
            [files, urls],
            [log, sources, heatmap, status],
            show_progress_on=[sources],
        )
        ask_outputs = [answer_md, citations_md, gallery, hits_state, question_state, page_view, page_note]
        ask_btn.click(ask_event, [question], ask_outputs, show_progress="minimal")
        question.submit(ask_event, [question], ask_outputs, show_progress="minimal")
        gallery.select(
            select_event, [hits_state, question_state, heatmap], [page_view, page_note, selected_state]
        )
        heatmap.change(
            heatmap_event, [hits_state, question_state, heatmap, selected_state], [page_view, page_note]
        )
    demo.pagesight_app = app
    return demo


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host.strip("[]"), 0))
        return int(s.getsockname()[1])


def launch(
    demo: Any,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    block: bool = True,
    quiet: bool = False,
    auth: Sequence[tuple[str, str]] | None = None,
) -> str:
    """Serve a :func:`build_app` app on ``host:port`` and return its URL.

    Args:
        demo: the app.
        host: interface to bind (loopback by default).
        port: TCP port; 0 picks a free one.
        block: serve until interrupted (Ctrl+C); ``False`` returns at once, serving in a thread
            (stop with ``demo.close()``).
        quiet: do not print the URL. Gradio's own start-up lines (and its "set `share=True`"
            hint, which does not apply: pagesight never opens a public tunnel) are never printed.
        auth: ``(user, password)`` pairs allowed to log in (Gradio's login page); ``None`` or
            empty: no authentication, anyone who reaches the address can use the app.

    Raises:
        ConfigurationError: the port is in use.
    """
    if port == 0:
        port = _free_port(host)
    app: App | None = getattr(demo, "pagesight_app", None)
    allowed = [str(app.image_dir)] if app is not None else []
    try:
        _, url, _ = demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            auth=[tuple(pair) for pair in auth] if auth else None,
            prevent_thread_lock=True,
            quiet=True,  # not Gradio's lines: they suggest share=True, a public tunnel
            allowed_paths=allowed,
            max_file_size=app.max_upload_bytes if app is not None else None,
            footer_links=["gradio", "settings"],
            ssr_mode=False,
            mcp_server=False,
            css=_CSS,
        )
    except OSError as e:
        reason = "the port is in use" if "empty port" in str(e) else str(e)
        raise ConfigurationError(
            f"cannot serve on {host}:{port}: {reason}; choose another --port, or --port 0 for any free port"
        ) from e
    if not quiet:
        print(f"* Running on local URL:  {url}", flush=True)  # the caller asked for it (quiet=False)
    if block:
        demo.block_thread()
    return str(url)


def serve(
    store: str | Path, host: str = "127.0.0.1", port: int = 7860, *, block: bool = True, **options: Any
) -> Any:
    """Build the app for ``store`` (see :func:`build_app` for ``options``) and serve it.

    Returns the ``gradio.Blocks`` (already closed when ``block`` is true and the server stopped).
    """
    demo = build_app(store, **options)
    launch(demo, host, port, block=block)
    return demo


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")

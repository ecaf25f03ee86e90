"""The ``pagesight`` command: index, search, ask, sources, delete, check, serve, eval.

Exit status: 0 on success; 1 when some sources failed to index (the others stay indexed) or a
command failed; 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pagesight._terminal import safe, safe_json, valid_utf8
from pagesight.errors import ConfigurationError, PagesightError

if TYPE_CHECKING:
    from pagesight.index import Index
    from pagesight.retrieval.search import Mode

logger = logging.getLogger("pagesight")

DEFAULT_STORE = ".pagesight"


def _write(text: str, stream: Any) -> None:
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a terminal that cannot show some characters (e.g. cp1252)
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding))


def _out(text: object = "", *, err: bool = False, multiline: bool = False, end: str = "\n") -> None:
    """Write human-readable ``text`` to stdout (or stderr) through :func:`~pagesight._terminal.safe`.

    Every human-readable line the CLI prints goes through here, so a hostile file name, page text
    or query cannot send escape sequences to the user's terminal.
    """
    stream = sys.stderr if err else sys.stdout
    _write(safe(text, multiline=multiline) + end, stream)
    if not end:
        stream.flush()


def _out_json(obj: Any, **dumps_options: Any) -> None:
    """Write ``obj`` as JSON to stdout: exact (``json.loads`` gives ``obj`` back), terminal-safe."""
    _write(safe_json(obj, **dumps_options) + "\n", sys.stdout)


def _err(msg: str) -> None:
    _out(msg, err=True)


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1 (``-k 0``, ``-k -3``: usage errors, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _store_location(text: str) -> str:
    """An ``argparse`` type for ``--store``: a URL, or a path that is not an existing regular file."""
    if "://" not in text and Path(text).is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is a file, not a store folder; give a folder (new or existing) or http://host:port"
        )
    return text


def _failure_line(source: str, error: str | None) -> str:
    """``source: error``, naming ``source`` once when ``error`` already starts with it."""
    text = error or "failed"
    return text if text.startswith(f"{source}:") else f"{source}: {text}"


def _text_arg(text: str, what: str) -> str:
    """``text`` from argv with bytes that are not UTF-8 (lone surrogates) replaced by U+FFFD."""
    clean = valid_utf8(text)
    if clean != text:
        shown = clean if len(clean) <= 80 else clean[:80] + "..."
        _err(f"pagesight: warning: the {what} is not valid UTF-8; invalid bytes replaced: {shown!r}")
    return clean


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the CLI: one escaped line per warning."""
    _write(safe(f"{filename}:{lineno}: {category.__name__}: {message}") + "\n", file or sys.stderr)


class _SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped (log messages carry file names and URLs)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return safe(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return safe(super().formatException(ei), multiline=True)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return safe(super().formatStack(stack_info), multiline=True)


class _Parser(argparse.ArgumentParser):
    """argparse with its messages (usage errors quote the bad argument) made terminal-safe."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            _write(safe(message, multiline=True), file or sys.stderr)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        type=_store_location,
        default=os.environ.get("PAGESIGHT_STORE", DEFAULT_STORE),
        help="store folder, or http://host:port of a Chroma server "
        f"(default: $PAGESIGHT_STORE or {DEFAULT_STORE})",
    )
    server = p.add_argument_group("Chroma server stores (--store http://host:port)")
    server.add_argument(
        "--chroma-header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="HTTP header for every request, e.g. 'Authorization: Bearer TOKEN' or 'X-Chroma-Token: "
        "TOKEN'; repeatable (also $PAGESIGHT_CHROMA_HEADERS, one per line; values are never printed)",
    )
    server.add_argument(
        "--chroma-tenant", default=None, help="tenant (default: $CHROMA_TENANT or default_tenant)"
    )
    server.add_argument(
        "--chroma-database", default=None, help="database (default: $CHROMA_DATABASE or default_database)"
    )


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Chroma server options of ``--chroma-header/--chroma-tenant/--chroma-database``."""
    from pagesight.pipelines.stores import is_store_url, parse_headers

    headers = parse_headers(getattr(args, "chroma_header", None) or [])
    tenant = getattr(args, "chroma_tenant", None)
    database = getattr(args, "chroma_database", None)
    if (headers or tenant or database) and not is_store_url(args.store):
        raise ConfigurationError(
            "--chroma-header, --chroma-tenant and --chroma-database apply to --store http://host:port"
        )
    return {"headers": headers or None, "tenant": tenant, "database": database}


def _index(args: argparse.Namespace) -> Index:
    """The existing store ``--store`` names, with the query options of the command (profile, trust)."""
    from pagesight.index import Index

    return Index.open(
        args.store,
        profile=getattr(args, "profile", None),
        trust_remote_code=getattr(args, "trust_remote_code", False),
        ollama_host=getattr(args, "ollama_host", None),
        **_server_options(args),
    )


def _search_options(args: argparse.Namespace, mode: Mode | None = None) -> dict[str, Any]:
    """What ``--mode``, ``--reranker``, ``--exhaustive`` and ``--rerank-candidates`` ask of a search."""
    return {
        "mode": mode or args.mode,
        "reranker": getattr(args, "reranker", None) or None,  # None: the profile's; "none": off
        "exhaustive": getattr(args, "exhaustive", False),
        "rerank_candidates": args.rerank_candidates,
    }


def _ocr_engine(args: argparse.Namespace) -> tuple[Any, str]:
    """The OCR engine ``--ocr-engine`` picks (``None``: none installed, or ``--ocr never``) and its line."""
    from pagesight.documents.ocr import TesseractEngine, describe_engine, pick_engine

    if args.ocr == "never":
        return "auto", "off (--ocr never)"
    engine = pick_engine(args.ocr_engine)
    if isinstance(engine, TesseractEngine):
        engine.check_lang(args.ocr_lang)
    mode = "" if args.ocr == "auto" else f", --ocr {args.ocr}"
    return engine, describe_engine(engine, args.ocr_lang) + mode


def cmd_index(args: argparse.Namespace) -> int:
    from pagesight.index import Index
    from pagesight.pipelines.ingest import SourceResult
    from pagesight.profiles import SHORT_KINDS, model_kind, resolve_profile

    profile, why = resolve_profile(args.profile, trust_remote_code=args.trust_remote_code)
    model = args.model or profile.embedder
    kind = args.embedder or model_kind(model)
    ocr_engine, ocr_line = _ocr_engine(args)
    _err(
        f"pagesight: {why} — {profile.description}"
        + (f"; model {model}" if args.model else "")
        + f"; OCR: {ocr_line}"
    )
    if args.page_input != "auto" and kind == "dense":
        raise ConfigurationError("--page-input applies to vision-language and late-interaction models")
    if kind == "late" and args.dimensions is not None:
        raise ConfigurationError("--dimensions applies to dense embedders, not late interaction")
    if kind != "late" and (args.storage or args.pool_factor or args.summary or args.candidates_from):
        raise ConfigurationError(
            "--storage, --pool-factor, --summary and --candidates-from apply to late-interaction models"
        )
    index = Index.create(
        args.store,
        profile=profile,
        model=model,
        kind=SHORT_KINDS[kind],
        page_input=args.page_input,
        dimensions=args.dimensions,
        storage=args.storage,
        pool_factor=args.pool_factor,
        summary=args.summary,
        candidates_from=args.candidates_from,
        trust_remote_code=args.trust_remote_code,
        **_server_options(args),
    )

    from pagesight._progress import IndexProgress

    progress = IndexProgress(enabled=not args.quiet)  # one bar for the run, plain lines when piped

    def show(r: SourceResult) -> None:
        if r.status == "failed":
            progress.line(f"  FAILED {_failure_line(r.source, r.error)}")
        else:
            progress.line(f"  {r.status:<10} {r.source} ({r.pages} pages)")
        for w in r.warnings:
            progress.line(f"    warning: {w}")

    loader_opts: dict[str, Any] = {"dpi": args.dpi, "render": not args.no_images}
    if args.renderer:
        loader_opts["renderer"] = args.renderer
    if args.password:
        loader_opts["password"] = args.password
    loader_opts.update(loader_limits(args))
    loader_opts.update(
        ocr=args.ocr, ocr_lang=args.ocr_lang, ocr_engine=ocr_engine, ocr_figures=not args.no_ocr_figures
    )
    if args.ray is not None:
        from pagesight.pipelines.distributed import RayExecutor

        if args.ray and args.ray not in ("auto", "local") and ":" not in args.ray:
            raise ConfigurationError(
                f"--ray {args.ray!r} is not a Ray address (auto, HOST:PORT, ray://HOST:10001); "
                "put the sources before --ray, or write --ray=ADDRESS"
            )

        loader_opts["executor"] = RayExecutor(address=args.ray or None, shared_dir=args.ray_shared_dir)
    elif args.ray_shared_dir is not None:
        raise ConfigurationError("--ray-shared-dir applies with --ray")
    with progress:
        report = index.add(
            args.sources,
            force=args.force,
            show_progress=False,  # no per-source bars: `progress` shows the whole run
            on_result=show,
            on_progress=progress,
            **loader_opts,
        )
    if not report.results:
        from pagesight.documents.sources import SUPPORTED_EXTENSIONS

        kinds = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        _err(f"pagesight: no supported files found in the given sources ({kinds})")
        return 1
    _err(report.summary().splitlines()[0])  # the counts: each failure was shown as it happened
    return 0 if report.ok else 1


def _hit_json(h: Any) -> dict[str, Any]:
    return {
        "source": h.source,
        "page": h.page,
        "score": round(float(h.score), 6),
        "text": h.text,
        "image": str(h.image) if h.image else None,
        "id": h.id,
        "text_source": getattr(h, "text_source", "layer"),
        "page_label": getattr(h, "page_label", None),  # the printed page label, when the PDF has one
    }


def _printed(page: int, label: str | None) -> str:
    """`` (printed 37)`` when the page's printed label differs from its index (see ``page_reference``)."""
    return f" (printed {label})" if label and label != str(page) else ""


def cmd_search(args: argparse.Namespace) -> int:
    hits = _index(args).search(_text_arg(args.query, "query"), k=args.k, **_search_options(args))
    if args.json:
        _out_json([_hit_json(h) for h in hits], indent=2)
        return 0
    if not hits:
        _out("no results")
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())[:160]
        _out(f"{i:>2}. {h.score:.3f}  {h.source} p.{h.page}{_printed(h.page, h.page_label)}")
        _out(f"    {snippet}")
    return 0


def _generator(args: argparse.Namespace, index: Index) -> Any:
    """The generator ``--generator`` (or the profile) names, with the options that apply to it."""
    from pagesight.models.generate import parse_generator_spec

    spec = args.generator or index.default_generator
    kind, _ = parse_generator_spec(spec)
    options: dict[str, Any] = {}
    if kind in ("ollama", "hf") and args.max_images is not None:
        options["max_images"] = args.max_images
    if kind == "hf" and args.max_new_tokens is not None:
        options["max_new_tokens"] = args.max_new_tokens
    if kind == "ollama" and args.max_new_tokens is not None:
        options["options"] = {"temperature": 0, "num_predict": args.max_new_tokens}
    if kind == "extractive" and args.mode == "bm25":
        raise ConfigurationError(
            "the extractive generator needs the store's embedder; use --mode hybrid or dense"
        )
    return index.generator(spec, **options)


def cmd_ask(args: argparse.Namespace) -> int:
    index = _index(args)
    index.searcher(**_search_options(args))  # a missing or empty store is reported before the generator
    generator = _generator(args, index)
    question = _text_arg(args.question, "question")

    def ask(on_token: Any = None) -> Any:
        return index.ask(question, generator, k=args.k, on_token=on_token, **_search_options(args))

    if args.json:
        result = ask()
        _out_json(result.to_dict(), indent=2)
        return 0

    def show(piece: str) -> None:
        _out(piece, multiline=True, end="")  # the answer's own line breaks are layout

    result = ask(show)
    _out()
    if result.citations:
        _out("\nSources:", multiline=True)
        for c in result.citations:
            image = f"  {c.image}" if c.image else ""
            _out(f"  {c.source} p.{c.page}{_printed(c.page, c.page_label)}  (score {c.score:.3f}){image}")
    if result.unmatched_citations:
        unmatched = ", ".join(result.unmatched_citations)
        _err(f"pagesight: the answer cites pages that were not retrieved: {unmatched}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    index = _index(args)
    items = index.sources()
    if args.json:
        _out_json([{"source": s.source, "pages": s.pages} for s in items])
        return 0
    for s in items:
        _out(f"{s.pages:>6}  {s.source}")
    info = index.embedder
    _out(f"{len(items)} source(s); embedder: {info.describe() if info else 'none'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from pagesight.documents.url import redact_url

    index = _index(args)
    failed = 0
    for given in args.sources:
        source = redact_url(given)  # a URL is stored without its credentials; a path is unchanged
        n = index.delete(source)
        if n == 0:
            _err(f"  not in store: {source}")
            failed += 1
        else:
            _err(f"  deleted {source} ({n} pages)")
    return 1 if failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    """``pagesight check``: compare the database, page images, token files and journal; exit 1 if damaged."""
    from dataclasses import asdict

    from pagesight.documents.url import redact_url
    from pagesight.pipelines.stores import is_store_url

    where = str(args.store)
    url = is_store_url(where)
    index = _index(args)
    late = index.holds_tokens()
    health = index.check(repair=args.repair)
    shown = health.location  # a server URL without its password
    if args.json:
        _out_json({"ok": health.ok, "problems": health.problems(), **asdict(health)}, ensure_ascii=False)
        return 0 if health.ok else 1
    parts = f"{health.pages} pages, {health.image_files} page images" + (", token matrices" if late else "")
    if health.writer_pid is not None:
        _out(f"note: another process (pid {health.writer_pid or 'unknown'}) is writing the store")
    if health.ok:
        _out(f"store {shown}: {parts}; {'repaired: ' if args.repair else ''}every part agrees")
        return 0
    _out(f"store {shown} is damaged ({parts}):")
    for line in health.problems():
        _out(f"  - {line}")
    _out(f"to repair: {health.advice(redact_url(where) if url else where)}")
    return 1


def cmd_eval(args: argparse.Namespace) -> int:
    from pagesight.evaluation import coverage_warning, evaluate, load_queries
    from pagesight.pipelines.answer import source_name

    queries = load_queries(args.queries)
    modes: list[Mode] = ["dense", "bm25", "hybrid"] if args.compare else [args.mode]
    index = _index(args)
    _ = index.encoder  # every mode, bm25 too: an empty store is refused before any search
    missing = coverage_warning(queries, index.sources(), store=index.location)
    if missing is not None:  # scores of pages that are not indexed can only be 0: say so first
        _err(f"pagesight: warning: {missing}")
    table: dict[str, dict[str, float]] = {}
    for mode in modes:
        searcher = index.searcher(**_search_options(args, mode))
        run = {
            q.qid: [f"{source_name(h.source)}#{h.page}" for h in searcher.search(q.query, k=10)]
            for q in queries
        }
        metrics = evaluate(run, queries)
        table[mode] = {key: float(metrics[key]) for key in ("nDCG@5", "Recall@5", "Recall@10", "MRR@10")}
    if args.json:
        _out_json(table if args.compare else table[args.mode])
        return 0
    _out(f"{len(queries)} queries, store {index.location}")  # a server URL without its password
    _out(f"{'mode':<8} {'nDCG@5':>8} {'Recall@5':>9} {'Recall@10':>10} {'MRR@10':>8}")
    for name, m in table.items():
        _out(
            f"{name:<8} {m['nDCG@5']:>8.4f} {m['Recall@5']:>9.4f} {m['Recall@10']:>10.4f} {m['MRR@10']:>8.4f}"
        )
    return 0


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The loader limits and ``--allow-private-urls`` (``pagesight index`` and ``pagesight serve``)."""
    limits = p.add_argument_group("limits (see README: Safety and limits)")
    limits.add_argument(
        "--max-pages",
        type=int,
        default=None,
        help="refuse PDFs, multi-page images and web pages with more pages (default: 10000)",
    )
    limits.add_argument(
        "--max-pixels", type=int, default=None, help="pixels per image or page image (default: 89478485)"
    )
    limits.add_argument(
        "--max-chars-per-page", type=int, default=None, help="cut page text beyond this (default: 200000)"
    )
    limits.add_argument(
        "--max-bytes", type=int, default=None, help="largest URL download in bytes (default: 64 MiB)"
    )
    limits.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up on a URL whose whole download, redirects included, takes longer (default: 120)",
    )
    limits.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="also fetch private, loopback and link-local addresses (trusted networks only)",
    )


def loader_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The loader options the limit flags of :func:`add_limit_args` ask for (unset flags left out).

    ``--timeout`` becomes the URL loader's ``deadline`` (the whole download; each connect and
    read also waits at most 20 s).

    Raises:
        ConfigurationError: a limit below 1, or a ``--timeout`` that is not a positive number.
    """
    options: dict[str, Any] = {}
    for name in ("max_pages", "max_pixels", "max_chars_per_page", "max_bytes"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            options[name] = value
    timeout = getattr(args, "timeout", None)
    if timeout is not None:
        if not 0 < timeout < float("inf"):
            raise ConfigurationError(f"--timeout must be a positive number of seconds, got {timeout}")
        options["deadline"] = timeout
    if args.allow_private_urls:
        options["allow_private"] = True
    return options


def trust_arg(p: argparse.ArgumentParser) -> None:
    """``--trust-remote-code``."""
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model's own code from its repository (the NVIDIA and Nomic models need it)",
    )


def _late_search_args(p: argparse.ArgumentParser, *, generator: bool = False) -> None:
    p.add_argument(
        "--exhaustive", action="store_true", help="late interaction: MaxSim over every page, not candidates"
    )
    p.add_argument(
        "--reranker",
        default=None,
        help="rerank the retrieved pages: llama-nemotron-rerank-vl-1b-v2 (page images, GPU), "
        "ms-marco-minilm-l6-v2, nanoranker (bundled, CPU), a Hub id or folder; 'none' turns a "
        "profile's reranker off",
    )
    p.add_argument(
        "--rerank-candidates", type=int, default=20, help="pages the reranker re-scores (default: 20)"
    )
    from pagesight.profiles import profile_option_help

    p.add_argument("--profile", default=None, help=profile_option_help(generator=generator))
    trust_arg(p)


def add_generator_args(p: argparse.ArgumentParser, *, written: str = "the answer") -> None:
    """``--generator`` and ``--ollama-host`` (``pagesight ask`` and ``pagesight serve``)."""
    from pagesight.models.generate import GENERATOR_HELP

    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help=f"who writes {written}: {GENERATOR_HELP} (default: the profile's, else extractive)",
    )
    p.add_argument(
        "--ollama-host", default=None, help="Ollama server (default: $OLLAMA_HOST or http://127.0.0.1:11434)"
    )


def _generator_args(p: argparse.ArgumentParser) -> None:
    add_generator_args(p)
    p.add_argument("--max-images", type=int, default=None, help="vision generators: most page images sent")
    p.add_argument("--max-new-tokens", type=int, default=None, help="ollama/hf generators: longest answer")


_MODE_HELP = (
    "hybrid: embeddings fused with BM25 keywords; dense: embeddings only; bm25: keywords only "
    "(default: %(default)s)"
)


def build_parser() -> argparse.ArgumentParser:
    from pagesight import __version__
    from pagesight.profiles import profiles_epilog

    raw = argparse.RawDescriptionHelpFormatter  # keeps the epilog's one line per profile
    listed: dict[str, Any] = {"epilog": profiles_epilog(), "formatter_class": raw}

    parser = _Parser(prog="pagesight", description="Index, search and question PDFs, web pages and images.")
    parser.add_argument("--version", action="version", version=f"pagesight {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging: -v info, -vv debug (default: warnings only)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index files, folders and URLs", **listed)
    p.add_argument("sources", nargs="+", help="PDFs, images, folders (recursive) or http(s) URLs")
    _store_arg(p)
    p.add_argument(
        "--profile", default=None, help="offline | offline-late | ollama | gpu | auto (default: auto)"
    )
    p.add_argument("--model", default=None, help="embedder (alias, Hub id, local folder, ollama:NAME)")
    p.add_argument(
        "--embedder",
        choices=["dense", "vl", "late"],
        default=None,
        help="kind of --model when pagesight cannot tell: one vector per page text (dense), per page "
        "image and/or text (vl), or one per token (late, MaxSim)",
    )
    p.add_argument(
        "--page-input",
        choices=["auto", "image", "text", "image_text"],
        default="auto",
        help="vl and late models: what of a page is embedded (default: image+text when the page has text)",
    )
    p.add_argument("--dimensions", type=int, default=None, help="Matryoshka truncation (default: native)")
    p.add_argument(
        "--storage",
        choices=["float16", "float32", "int8"],
        default=None,
        help="late interaction: token storage",
    )
    p.add_argument("--pool-factor", type=int, default=None, help="late interaction: pool tokens by 2-4")
    p.add_argument(
        "--summary", choices=["mean", "muvera"], default=None, help="late interaction: candidate vectors"
    )
    p.add_argument(
        "--candidates-from",
        choices=["summary", "centroids"],
        default=None,
        help="late interaction: two-stage candidates from summary vectors (default) or token centroids",
    )
    trust_arg(p)
    p.add_argument("--dpi", type=int, default=96, help="page image resolution (default: 96)")
    p.add_argument("--renderer", choices=["pymupdf", "pdfium"], default=None, help="PDF renderer")
    p.add_argument("--password", default=None, help="password for encrypted PDFs")
    p.add_argument("--no-images", action="store_true", help="do not render page images")
    p.add_argument(
        "--ocr",
        choices=["auto", "always", "never"],
        default="auto",
        help="OCR pages without a usable text layer, images and raster figures (auto, the default), "
        "every page (always) or none (never)",
    )
    p.add_argument(
        "--ocr-lang",
        default="eng",
        help="Tesseract languages joined by + (default: eng; e.g. deu+eng, jpn); packs: tesseract-ocr-LANG",
    )
    p.add_argument(
        "--ocr-engine",
        choices=["auto", "tesseract", "rapidocr"],
        default="auto",
        help="OCR engine (default: Tesseract when installed, else RapidOCR)",
    )
    p.add_argument(
        "--no-ocr-figures",
        action="store_true",
        help="do not OCR raster figures on pages that have a text layer",
    )
    add_limit_args(p)
    p.add_argument("--force", action="store_true", help="re-index sources that did not change")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="load and embed on Ray (pip install 'pagesight[ray]'): no ADDRESS starts a local Ray "
        "(or joins $RAY_ADDRESS); 'auto' joins the cluster running here; HOST:PORT or ray://HEAD:10001 "
        "another one. Put it after the sources (or write --ray=ADDRESS)",
    )
    p.add_argument(
        "--ray-shared-dir",
        default=None,
        metavar="PATH",
        help="with --ray on several nodes: a folder every node mounts at the same path "
        "(page images, OCR cache)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_index)

    for name, func, arg, helptext in (
        ("search", cmd_search, "query", "find the pages that best match a query"),
        ("ask", cmd_ask, "question", "answer a question from the indexed pages, with citations"),
    ):
        p = sub.add_parser(name, help=helptext, **listed)
        p.add_argument(arg, help=f"the {arg} (quote it when it has spaces)")
        _store_arg(p)
        p.add_argument(
            "-k",
            type=positive_int,
            default=5 if name == "ask" else 10,
            help="pages to retrieve, at least 1 (default: %(default)s)",
        )
        p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid", help=_MODE_HELP)
        _late_search_args(p, generator=name == "ask")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "ask":
            _generator_args(p)
        p.set_defaults(func=func)

    p = sub.add_parser("sources", help="list indexed sources and their page counts")
    _store_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("delete", help="remove sources from the store")
    p.add_argument("sources", nargs="+", help="sources to remove, as `pagesight sources` lists them")
    _store_arg(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "check", help="compare the store's database, page images, token files and journal (exit 1: damaged)"
    )
    _store_arg(p)
    p.add_argument(
        "--repair",
        action="store_true",
        help="finish interrupted writes and remove page images and token files no record uses",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_check)

    from pagesight.ui.command import add_serve_parser

    add_serve_parser(sub)  # pagesight serve: the web app

    from pagesight.models.doctor import add_doctor_parser

    add_doctor_parser(sub)  # pagesight doctor MODEL: can the installed packages run it

    from pagesight.cli_cluster import add_cluster_parser

    add_cluster_parser(sub)  # pagesight cluster: pages grouped by their vectors, named by top terms

    p = sub.add_parser("eval", help="retrieval metrics on a JSONL query file", **listed)
    _store_arg(p)
    p.add_argument(
        "--queries", required=True, type=Path, help='JSONL: {"qid", "query", "relevant": ["file#page"]}'
    )
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid", help=_MODE_HELP)
    p.add_argument("--compare", action="store_true", help="evaluate dense, bm25 and hybrid")
    _late_search_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)
    return parser


PIPE_CLOSED = 141
"""Exit status when the reader of stdout went away (``| head``): 128 + SIGPIPE, what the shell
reports for ``cat``, ``grep`` and other Unix tools in the same place."""


def _pipe_closed() -> int:
    """Stop quietly after stdout's reader closed the pipe: no traceback, and no second error when
    Python flushes stdout on exit (stdout is pointed at the null device)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (captured in tests): nothing to flush
        pass
    return PIPE_CLOSED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pagesight`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    log_handler = logging.StreamHandler()
    log_handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[log_handler])
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # some libraries (bm25s) set their own loggers to DEBUG
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.verbose == 0:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar
    shown_by = warnings.showwarning
    warnings.showwarning = _show_warning  # warnings name files and pages too
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # buffered output meets a closed pipe here
        return code
    except BrokenPipeError:  # `pagesight search ... | head -1`: the reader has gone
        return _pipe_closed()
    except ConfigurationError as e:
        _err(f"pagesight: {e}")
        return 2
    except PagesightError as e:
        _err(f"pagesight: {e}")
        return 1
    except KeyboardInterrupt:
        _err("pagesight: interrupted")
        return 130
    finally:
        warnings.showwarning = shown_by


if __name__ == "__main__":
    sys.exit(main())

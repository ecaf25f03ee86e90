"""The ``pagesight`` command: index, search, ask, sources, delete, serve, eval.

Exit status: 0 on success; 1 when some sources failed to index (the others stay indexed) or a
command failed; 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pagesight.errors import ConfigurationError, PagesightError

logger = logging.getLogger("pagesight")

DEFAULT_STORE = ".pagesight"


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        default=os.environ.get("PAGESIGHT_STORE", DEFAULT_STORE),
        help="store folder, or http://host:port of a Chroma server "
        f"(default: $PAGESIGHT_STORE or {DEFAULT_STORE})",
    )


def _open_store(location: str, *, must_exist: bool) -> Any:
    from pagesight.pipelines.stores import open_store

    return open_store(location, must_exist=must_exist)


def _multivector_store(location: str, **options: Any) -> Any:
    from pagesight.pipelines.stores import open_multivector_store

    return open_multivector_store(location, **options)


def _encoder_for_store(store: Any, location: str, args: argparse.Namespace) -> Any:
    from pagesight.pipelines.stores import store_encoder

    return store_encoder(store, trust_remote_code=_trusted(args))


def _query_profile(args: argparse.Namespace) -> Any:
    """The profile named by a query command's --profile, or ``None`` (no auto choice at query time)."""
    from pagesight.profiles import resolve_profile

    name = getattr(args, "profile", None)
    return resolve_profile(name)[0] if name else None


def _trusted(args: argparse.Namespace) -> bool:
    profile = _query_profile(args)
    return bool(getattr(args, "trust_remote_code", False) or (profile and profile.trust_remote_code))


def _reranker(args: argparse.Namespace) -> Any:
    profile = _query_profile(args)
    name = getattr(args, "reranker", None) or (profile.reranker if profile else None)
    if not name or name == "none":
        return None
    from pagesight.models.rerank import Reranker

    return Reranker(name, trust_remote_code=_trusted(args))


def _searcher(args: argparse.Namespace) -> Any:
    from pagesight.retrieval.search import PageSearcher

    mode = args.mode
    store = _open_store(args.store, must_exist=True)
    encoder = None if mode == "bm25" else _encoder_for_store(store, args.store, args)
    return PageSearcher(
        store,
        encoder,
        mode=mode,
        exhaustive=getattr(args, "exhaustive", False),
        reranker=_reranker(args),
        rerank_candidates=args.rerank_candidates,
    )


def cmd_index(args: argparse.Namespace) -> int:
    from pagesight.pipelines.ingest import SourceResult, ingest
    from pagesight.profiles import model_kind, page_encoder, resolve_profile

    profile, why = resolve_profile(args.profile, trust_remote_code=args.trust_remote_code)
    model = args.model or profile.embedder
    trust = args.trust_remote_code or profile.trust_remote_code
    kind = args.embedder or model_kind(model)
    _err(f"pagesight: {why} — {profile.description}" + (f"; model {model}" if args.model else ""))
    if args.page_input != "auto" and kind == "dense":
        raise ConfigurationError("--page-input applies to vision-language and late-interaction models")
    if kind == "late":
        if args.dimensions is not None:
            raise ConfigurationError("--dimensions applies to dense embedders, not late interaction")
        store: Any = _multivector_store(
            args.store, storage=args.storage, pool_factor=args.pool_factor, summary=args.summary
        )
    else:
        if args.storage or args.pool_factor or args.summary:
            raise ConfigurationError(
                "--storage, --pool-factor and --summary apply to late-interaction models"
            )
        store = _open_store(args.store, must_exist=False)
    encoder = page_encoder(
        model, kind, trust_remote_code=trust, page_input=args.page_input, dimensions=args.dimensions
    )

    def show(r: SourceResult) -> None:
        if r.status == "failed":
            _err(f"  failed     {r.source}: {r.error}")
        else:
            _err(f"  {r.status:<10} {r.source} ({r.pages} pages)")
        for w in r.warnings:
            _err(f"    warning: {w}")

    loader_opts: dict[str, Any] = {"dpi": args.dpi, "render": not args.no_images}
    if args.renderer:
        loader_opts["renderer"] = args.renderer
    if args.password:
        loader_opts["password"] = args.password
    loader_opts.update(loader_limits(args))
    report = ingest(
        args.sources,
        store,
        encoder,
        force=args.force,
        show_progress=False if args.quiet else None,
        on_result=show,
        **loader_opts,
    )
    if not report.results:
        _err("pagesight: no supported files found in the given sources (.pdf, .png, .jpg, .tif, .webp)")
        return 1
    _err(report.summary())
    return 0 if report.ok else 1


def _hit_json(h: Any) -> dict[str, Any]:
    return {
        "source": h.source,
        "page": h.page,
        "score": round(float(h.score), 6),
        "text": h.text,
        "image": str(h.image) if h.image else None,
        "id": h.id,
    }


def cmd_search(args: argparse.Namespace) -> int:
    hits = _searcher(args).search(args.query, k=args.k)
    if args.json:
        print(json.dumps([_hit_json(h) for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no results")
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.text.split())[:160]
        print(f"{i:>2}. {h.score:.3f}  {h.source} p.{h.page}\n    {snippet}")
    return 0


def _generator(args: argparse.Namespace, encoder: Any) -> Any:
    """The generator ``--generator`` (or the profile) names, with the options that apply to it."""
    from pagesight.pipelines.generators import make_generator, parse_generator_spec

    profile = _query_profile(args)
    spec = args.generator or (profile.generator if profile else "extractive")
    kind, _ = parse_generator_spec(spec)
    options: dict[str, Any] = {}
    if kind in ("ollama", "hf") and args.max_images is not None:
        options["max_images"] = args.max_images
    if kind == "hf" and args.max_new_tokens is not None:
        options["max_new_tokens"] = args.max_new_tokens
    if kind == "ollama" and args.max_new_tokens is not None:
        options["options"] = {"temperature": 0, "num_predict": args.max_new_tokens}
    if kind == "extractive" and encoder is None:
        raise ConfigurationError(
            "the extractive generator needs the store's embedder; use --mode hybrid or dense"
        )
    return make_generator(
        spec, encoder=encoder, ollama_host=args.ollama_host, trust_remote_code=_trusted(args), **options
    )


def cmd_ask(args: argparse.Namespace) -> int:
    from pagesight.pipelines.answer import answer

    searcher = _searcher(args)
    generator = _generator(args, searcher.encoder)
    if args.json:
        result = answer(args.question, searcher, generator, k=args.k)
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = answer(args.question, searcher, generator, k=args.k, on_token=show)
    print()
    if result.citations:
        print("\nSources:")
        for c in result.citations:
            print(f"  {c.source} p.{c.page}  (score {c.score:.3f})" + (f"  {c.image}" if c.image else ""))
    if result.unmatched_citations:
        unmatched = ", ".join(result.unmatched_citations)
        _err(f"pagesight: the answer cites pages that were not retrieved: {unmatched}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    store = _open_store(args.store, must_exist=True)
    items = store.sources()
    if args.json:
        print(json.dumps([{"source": s.source, "pages": s.pages} for s in items], ensure_ascii=False))
        return 0
    for s in items:
        print(f"{s.pages:>6}  {s.source}")
    info = store.embedder
    print(f"{len(items)} source(s); embedder: {info.describe() if info else 'none'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    store = _open_store(args.store, must_exist=True)
    failed = 0
    for source in args.sources:
        n = store.delete_source(source)
        if n == 0:
            _err(f"  not in store: {source}")
            failed += 1
        else:
            _err(f"  deleted {source} ({n} pages)")
    return 1 if failed else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pagesight.evaluation import evaluate, load_queries
    from pagesight.pipelines.answer import source_name
    from pagesight.retrieval.search import Mode, PageSearcher

    queries = load_queries(args.queries)
    modes: list[Mode] = ["dense", "bm25", "hybrid"] if args.compare else [args.mode]
    store = _open_store(args.store, must_exist=True)
    encoder = _encoder_for_store(store, args.store, args)
    reranker = _reranker(args)
    table: dict[str, dict[str, float]] = {}
    for mode in modes:
        searcher = PageSearcher(
            store,
            encoder,
            mode=mode,
            exhaustive=args.exhaustive,
            reranker=reranker,
            rerank_candidates=args.rerank_candidates,
        )
        run = {
            q.qid: [f"{source_name(h.source)}#{h.page}" for h in searcher.search(q.query, k=10)]
            for q in queries
        }
        metrics = evaluate(run, queries)
        table[mode] = {key: float(metrics[key]) for key in ("nDCG@5", "Recall@5", "Recall@10", "MRR@10")}
    if args.json:
        print(json.dumps(table if args.compare else table[args.mode]))
        return 0
    print(f"{len(queries)} queries, store {args.store}")
    print(f"{'mode':<8} {'nDCG@5':>8} {'Recall@5':>9} {'Recall@10':>10} {'MRR@10':>8}")
    for name, m in table.items():
        print(
            f"{name:<8} {m['nDCG@5']:>8.4f} {m['Recall@5']:>9.4f} {m['Recall@10']:>10.4f} {m['MRR@10']:>8.4f}"
        )
    return 0


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The loader limits and ``--allow-private-urls`` (``pagesight index`` and ``pagesight serve``)."""
    limits = p.add_argument_group("limits (see README: Safety and limits)")
    limits.add_argument(
        "--max-pages", type=int, default=None, help="refuse PDFs with more pages (default: 10000)"
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
        "--allow-private-urls",
        action="store_true",
        help="also fetch private, loopback and link-local addresses (trusted networks only)",
    )


def loader_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The loader options the limit flags of :func:`add_limit_args` ask for (unset flags left out).

    Raises:
        ConfigurationError: a limit below 1.
    """
    options: dict[str, Any] = {}
    for name in ("max_pages", "max_pixels", "max_chars_per_page", "max_bytes"):
        value = getattr(args, name)
        if value is not None:
            if value < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
            options[name] = value
    if args.allow_private_urls:
        options["allow_private"] = True
    return options


def _trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model's own code from its repository (the NVIDIA and Nomic models need it)",
    )


def _late_search_args(p: argparse.ArgumentParser) -> None:
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
    p.add_argument(
        "--profile", default=None, help="take the reranker and remote-code consent of a profile (e.g. gpu)"
    )
    _trust_arg(p)


def _generator_args(p: argparse.ArgumentParser) -> None:
    from pagesight.pipelines.generators import GENERATOR_HELP

    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help=f"who writes the answer: {GENERATOR_HELP} (default: the profile's, else extractive)",
    )
    p.add_argument(
        "--ollama-host", default=None, help="Ollama server (default: $OLLAMA_HOST or http://127.0.0.1:11434)"
    )
    p.add_argument("--max-images", type=int, default=None, help="vision generators: most page images sent")
    p.add_argument("--max-new-tokens", type=int, default=None, help="ollama/hf generators: longest answer")


def build_parser() -> argparse.ArgumentParser:
    from pagesight import __version__

    parser = argparse.ArgumentParser(
        prog="pagesight", description="Index, search and question PDFs, web pages and images."
    )
    parser.add_argument("--version", action="version", version=f"pagesight {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index files, folders and URLs")
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
    _trust_arg(p)
    p.add_argument("--dpi", type=int, default=96, help="page image resolution (default: 96)")
    p.add_argument("--renderer", choices=["pymupdf", "pdfium"], default=None, help="PDF renderer")
    p.add_argument("--password", default=None, help="password for encrypted PDFs")
    p.add_argument("--no-images", action="store_true", help="do not render page images")
    add_limit_args(p)
    p.add_argument("--force", action="store_true", help="re-index sources that did not change")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_index)

    for name, func, arg, helptext in (
        ("search", cmd_search, "query", "find the pages that best match a query"),
        ("ask", cmd_ask, "question", "answer a question from the indexed pages, with citations"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument(arg)
        _store_arg(p)
        p.add_argument("-k", type=int, default=5 if name == "ask" else 10, help="pages to retrieve")
        p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
        _late_search_args(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "ask":
            _generator_args(p)
        p.set_defaults(func=func)

    p = sub.add_parser("sources", help="list indexed sources and their page counts")
    _store_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_sources)

    p = sub.add_parser("delete", help="remove sources from the store")
    p.add_argument("sources", nargs="+")
    _store_arg(p)
    p.set_defaults(func=cmd_delete)

    from pagesight.ui.command import add_serve_parser

    add_serve_parser(sub)  # pagesight serve: the web app

    p = sub.add_parser("eval", help="retrieval metrics on a JSONL query file")
    _store_arg(p)
    p.add_argument(
        "--queries", required=True, type=Path, help='JSONL: {"qid", "query", "relevant": ["file#page"]}'
    )
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument("--compare", action="store_true", help="evaluate dense, bm25 and hybrid")
    _late_search_args(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pagesight`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # some libraries (bm25s) set their own loggers to DEBUG
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.verbose == 0:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar
    try:
        return int(args.func(args))
    except ConfigurationError as e:
        _err(f"pagesight: {e}")
        return 2
    except PagesightError as e:
        _err(f"pagesight: {e}")
        return 1
    except KeyboardInterrupt:
        _err("pagesight: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

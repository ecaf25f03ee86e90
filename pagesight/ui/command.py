"""``pagesight serve``: the web app from the command line.

Wired into :mod:`pagesight.cli` with::

    from pagesight.ui.command import add_serve_parser
    add_serve_parser(sub)          # sets func=cmd_serve
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pagesight.errors import ConfigurationError, MissingDependencyError

__all__ = ["add_serve_parser", "cmd_serve", "no_auth_warning"]


def no_auth_warning(host: str) -> str | None:
    """The warning printed when ``host`` is reachable from other machines; ``None`` for loopback."""
    from pagesight.ui.app import is_loopback

    if is_loopback(host):
        return None
    return (
        f"pagesight: warning: serving on {host}: the app has no authentication; anyone who can reach "
        "this address can read the indexed documents and add new ones."
    )


def _check_generator(spec: str | None) -> None:
    from pagesight.pipelines.generators import parse_generator_spec

    if spec is not None:
        parse_generator_spec(spec)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the web app until interrupted. Exit 2 when gradio is missing or an option is wrong."""
    from pagesight._deps import require

    try:
        require("gradio", "ui")
    except MissingDependencyError as e:
        print(f"pagesight: the web app needs gradio: {e}", file=sys.stderr)
        return 2
    from pagesight.cli import loader_limits
    from pagesight.ui.app import build_app, launch

    if args.port < 0 or args.port > 65535:
        raise ConfigurationError(f"--port must be 0 (any free port) to 65535, got {args.port}")
    if args.k < 1:
        raise ConfigurationError(f"-k must be at least 1, got {args.k}")
    if args.max_upload_mb < 0:
        raise ConfigurationError(f"--max-upload-mb must be 0 (no limit) or more, got {args.max_upload_mb}")
    _check_generator(args.generator)
    warning = no_auth_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    demo = build_app(
        args.store,
        profile=args.profile,
        generator=args.generator,
        ollama_host=args.ollama_host,
        reranker=args.reranker,
        k=args.k,
        trust_remote_code=args.trust_remote_code,
        loader_options=loader_limits(args),
        max_upload_bytes=args.max_upload_mb * 2**20 if args.max_upload_mb else None,
    )
    url = launch(demo, args.host, args.port, block=False, quiet=True)
    app = demo.pagesight_app
    print(f"pagesight: {app.describe()}", file=sys.stderr)
    print(f"pagesight: serving at {url} (Ctrl+C to stop)", file=sys.stderr)
    demo.block_thread()
    return 0


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` command to the ``pagesight`` parser's subparsers."""
    from pagesight.cli import _store_arg, add_limit_args
    from pagesight.pipelines.generators import GENERATOR_HELP
    from pagesight.ui.state import DEFAULT_MAX_UPLOAD_BYTES

    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="web app: add documents, ask questions, see the cited pages"
    )
    _store_arg(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860; 0: any free port)")
    p.add_argument(
        "--profile",
        default=None,
        help="for a new store: the stack that indexes uploads (offline | offline-late | ollama | gpu | auto; "
        "default: auto); a named profile also picks the generator and reranker",
    )
    p.add_argument(
        "--generator",
        default=None,
        metavar="SPEC",
        help=f"who writes the answers: {GENERATOR_HELP} (default: the profile's, else extractive)",
    )
    p.add_argument(
        "--ollama-host", default=None, help="Ollama server (default: $OLLAMA_HOST or http://127.0.0.1:11434)"
    )
    p.add_argument(
        "--reranker", default=None, help="rerank the retrieved pages with this model; 'none': no reranker"
    )
    p.add_argument("-k", type=int, default=5, help="pages retrieved per question (default: 5)")
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow the model's own code from its repository (the NVIDIA and Nomic models need it)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES // 2**20,
        help="largest file the browser may upload, in MiB (default: 256; 0: no limit)",
    )
    add_limit_args(p)
    p.set_defaults(func=cmd_serve)
    return p

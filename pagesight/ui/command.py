"""``pagesight serve``: the web app from the command line.

Wired into :mod:`pagesight.cli` with::

    from pagesight.ui.command import add_serve_parser
    add_serve_parser(sub)          # sets func=cmd_serve
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pagesight.errors import ConfigurationError, MissingDependencyError

__all__ = ["add_serve_parser", "cmd_serve", "no_auth_warning", "parse_auth"]

AUTH_ENV = "PAGESIGHT_AUTH"


def _auth_pair(entry: str, where: str) -> tuple[str, str]:
    user, sep, password = entry.partition(":")
    if not sep or not user.strip() or not password:
        # never echo the entry: it may hold a password
        raise ConfigurationError(f"{where}: expected USER:PASSWORD with a non-empty user and password")
    return user.strip(), password


def parse_auth(
    values: Sequence[str] = (), files: Sequence[str | Path] = (), env: str | None = None
) -> list[tuple[str, str]]:
    """The ``(user, password)`` pairs of ``--auth``, ``--auth-file`` and ``$PAGESIGHT_AUTH``.

    Args:
        values: ``USER:PASSWORD`` entries (the password may contain ``:``).
        files: files of ``USER:PASSWORD`` lines; blank lines and lines starting with ``#`` are
            skipped.
        env: the value of ``$PAGESIGHT_AUTH``: one ``USER:PASSWORD`` entry per line.

    Raises:
        ConfigurationError: an entry without a user or password, or an unreadable file (the
            message names the flag, file and line, never the password).
    """
    pairs = [_auth_pair(v, "--auth") for v in values]
    for file in files:
        try:
            lines = Path(file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigurationError(f"--auth-file {file}: cannot read it ({type(e).__name__})") from e
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                pairs.append(_auth_pair(line.rstrip("\r\n"), f"--auth-file {file}, line {number}"))
    if env:
        pairs += [_auth_pair(line, f"${AUTH_ENV}") for line in env.splitlines() if line.strip()]
    return pairs


def no_auth_warning(host: str) -> str | None:
    """The warning printed when ``host`` is reachable from other machines; ``None`` for loopback."""
    from pagesight.ui.app import is_loopback

    if is_loopback(host):
        return None
    return (
        f"pagesight: warning: serving on {host}: the app has no authentication; anyone who can reach "
        "this address can read the indexed documents and add new ones. Add --auth USER:PASSWORD "
        f"(or --auth-file, ${AUTH_ENV})."
    )


def _check_generator(spec: str | None) -> None:
    from pagesight.models.generate import parse_generator_spec

    if spec is not None:
        parse_generator_spec(spec)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the web app until interrupted. Exit 2 when gradio is missing or an option is wrong."""
    from pagesight._deps import require
    from pagesight.cli import _err, _server_options, loader_limits

    try:
        require("gradio", "ui")
    except MissingDependencyError as e:
        _err(f"pagesight: the web app needs gradio: {e}")
        return 2
    from pagesight.ui.app import build_app, launch

    if args.port < 0 or args.port > 65535:
        raise ConfigurationError(f"--port must be 0 (any free port) to 65535, got {args.port}")
    if args.k < 1:
        raise ConfigurationError(f"-k must be at least 1, got {args.k}")
    if args.max_upload_mb < 0:
        raise ConfigurationError(f"--max-upload-mb must be 0 (no limit) or more, got {args.max_upload_mb}")
    _check_generator(args.generator)
    auth = parse_auth(args.auth or (), args.auth_file or (), os.environ.get(AUTH_ENV))
    warning = None if auth else no_auth_warning(args.host)
    if warning:
        _err(warning)
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
        store_options=_server_options(args),
    )
    url = launch(demo, args.host, args.port, block=False, quiet=True, auth=auth)
    app = demo.pagesight_app
    _err(f"pagesight: {app.describe()}")
    login = f"; login required ({len(auth)} user(s))" if auth else ""
    _err(f"pagesight: serving at {url}{login} (Ctrl+C to stop)")
    demo.block_thread()
    return 0


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` command to the ``pagesight`` parser's subparsers."""
    from pagesight.cli import _store_arg, add_generator_args, add_limit_args, positive_int, trust_arg
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
    add_generator_args(p, written="the answers")
    p.add_argument(
        "--reranker", default=None, help="rerank the retrieved pages with this model; 'none': no reranker"
    )
    p.add_argument("-k", type=positive_int, default=5, help="pages retrieved per question (default: 5)")
    p.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASSWORD",
        help="require a login (Gradio's login page); repeat for more users; "
        f"also ${AUTH_ENV} (one USER:PASSWORD per line)",
    )
    p.add_argument(
        "--auth-file",
        action="append",
        metavar="FILE",
        help="file of USER:PASSWORD lines (blank lines and # comments skipped)",
    )
    trust_arg(p)
    p.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES // 2**20,
        help="largest file the browser may upload, in MiB (default: 256; 0: no limit)",
    )
    add_limit_args(p)
    p.set_defaults(func=cmd_serve)
    return p

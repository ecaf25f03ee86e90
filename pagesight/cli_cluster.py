"""``pagesight cluster``: group a store's pages by their page vectors and name each group.

::

    pagesight cluster -n 4 --store store          # clusters, their terms and their first pages
    pagesight cluster -n 4 --json                  # every page of every cluster, as JSON
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_cluster_parser", "cmd_cluster"]


def add_cluster_parser(sub: Any) -> None:
    """Add ``pagesight cluster`` to the subcommands ``sub``."""
    from pagesight.cli import _store_arg, positive_int

    p = sub.add_parser(
        "cluster", help="group the indexed pages by meaning (k-means on page vectors), named by top terms"
    )
    _store_arg(p)
    p.add_argument(
        "-n", type=positive_int, default=5, help="how many clusters, at least 1 (default: %(default)s)"
    )
    p.add_argument(
        "--terms", type=positive_int, default=5, help="terms that name each cluster (default: %(default)s)"
    )
    p.add_argument(
        "--pages",
        type=positive_int,
        default=10,
        help="pages listed per cluster, most typical first (default: %(default)s; --json lists all)",
    )
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON (every page of every cluster)")
    p.set_defaults(func=cmd_cluster)


def cmd_cluster(args: argparse.Namespace) -> int:
    from pagesight.cli import _index, _out, _out_json

    clusters = _index(args).cluster(args.n, seed=args.seed, terms=args.terms)
    if args.json:
        _out_json(
            [
                {
                    "cluster": c.label,
                    "terms": list(c.terms),
                    "pages": [
                        {"source": h.source, "page": h.page, "score": round(h.score, 4)} for h in c.pages
                    ],
                }
                for c in clusters
            ]
        )
        return 0
    for c in clusters:
        _out(f"cluster {c.label} ({len(c.pages)} pages): {', '.join(c.terms) or '(no distinctive terms)'}")
        for h in c.pages[: args.pages]:
            _out(f"  {h.score:.3f}  {h.source} p.{h.page}")
        if len(c.pages) > args.pages:
            _out(f"  ... {len(c.pages) - args.pages} more")
    return 0

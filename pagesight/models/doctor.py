"""``pagesight doctor MODEL``: can the installed packages run this model, and if not, the pip line.

Prints :meth:`~pagesight.models.environment.EnvironmentReport.lines` for the model (its pinned
revision, the transformers versions its code runs with, flash-attn, other packages, what is
installed); exit status 0 when they can run it, 1 when not. Nothing is downloaded or loaded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pagesight.models.registry import MODELS, ModelSpec, resolve

__all__ = ["add_doctor_parser", "cmd_doctor", "find_spec"]

_KINDS = ("auto", "dense-text", "dense-vl", "late-interaction", "reranker")


def find_spec(model: str, kind: str = "auto") -> ModelSpec:
    """The registry row of ``model`` (alias or Hub id, any kind for ``"auto"``), else what
    :func:`~pagesight.models.registry.resolve` makes of it (a folder, an unlisted Hub id).

    Raises:
        ModelNotAvailableError: the name is none of these.
    """
    key = model.strip().lower()
    for spec in MODELS.values():
        if kind not in ("auto", spec.kind):
            continue
        if spec.alias == key or (spec.hf_id or "").lower() == key:
            return spec
    return resolve(model, "late-interaction" if kind == "auto" else kind)  # type: ignore[arg-type]


def add_doctor_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``doctor`` command to the ``pagesight`` parser's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="say whether the installed packages can run a model, and the pip line that fixes it "
        "(exit 1: they cannot)",
    )
    p.add_argument("model", help="alias, Hugging Face id or local folder of the model")
    p.add_argument(
        "--kind",
        choices=_KINDS,
        default="auto",
        help="the model's kind when an alias is ambiguous (default: auto, the first registry row named so)",
    )
    p.add_argument(
        "--revision", default=None, help="a Hub commit to check instead of the pinned one (default: the pin)"
    )
    p.add_argument(
        "--device",
        default=None,
        help="the torch device it will run on, e.g. cuda or cpu (default: not checked)",
    )
    p.add_argument("--json", action="store_true", help="print JSON (default: text lines)")
    p.set_defaults(func=cmd_doctor)
    return p


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the report for ``args.model``; 0 when the installed packages can run it, else 1."""
    from pagesight.models.environment import diagnose

    spec = find_spec(args.model, args.kind)
    report = diagnose(spec, args.revision, args.device)
    if args.json:
        env = report.environment
        print(
            json.dumps(
                {
                    "model": report.model,
                    "revision": report.revision,
                    "environment": env.name if env else None,
                    "transformers": env.transformers if env else None,
                    "packages": list(env.packages) if env else [],
                    "flash_attn": report.flash_attn,
                    "installed": report.installed,
                    "problems": report.problems,
                    "pip": report.pip if report.problems else "",
                    "verified": spec.verified,
                },
                indent=2,
            )
        )
    else:
        for line in report.lines():
            print(line)
        if spec.verified:
            print(f"verified: {spec.verified}")
        from pagesight.profiles import PROFILES

        gpu = PROFILES["gpu"]
        if spec.alias in (gpu.embedder, gpu.reranker):
            verdict = "it passes" if report.ok else "it fails here, so auto picks offline"
            print(f"profile: gpu uses this model; auto picks gpu only when this check passes ({verdict})")
    return 0 if report.ok else 1

"""Can the installed packages run a model? Checked before anything is downloaded.

Each NVIDIA, NV-Embed and E5-V row of :data:`~pagesight.models.registry.MODELS` names an
:data:`~pagesight.models.registry.ENVIRONMENTS` row: the transformers versions its remote code is
known to run with, whether it needs flash-attn, and the other packages it imports. The groups pin
conflicting transformers versions, so no single environment runs them all; each group is a
pagesight extra of the same name.

:func:`check_environment` compares the installed versions with the chosen model's row (and, for
a local folder, looks for a module-top ``import flash_attn`` in its code) and raises
:class:`~pagesight.errors.ModelNotAvailableError` naming the exact pip line. ``pagesight doctor
MODEL`` prints the same report. Set ``PAGESIGHT_SKIP_ENV_CHECK=1`` to load anyway (for a version
pagesight does not know to work).

Example:
    >>> from pagesight.models.environment import diagnose
    >>> from pagesight.models.registry import resolve
    >>> report = diagnose(resolve("e5-v", "dense-vl"))
    >>> report.environment.name, report.environment.transformers
    ('e5v', '>=4.41,<=4.44.2')
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pagesight.errors import ModelNotAvailableError
from pagesight.models.registry import ModelEnvironment, ModelSpec, environment_for

__all__ = [
    "EnvironmentReport",
    "SKIP_ENV",
    "check_environment",
    "diagnose",
    "imports_flash_attn_at_top",
    "installed_version",
]

SKIP_ENV = "PAGESIGHT_SKIP_ENV_CHECK"
"""Environment variable: ``1`` skips :func:`check_environment` (the load may then fail later)."""

_FLASH_PIP = "pip install flash-attn --no-build-isolation"
_TOP_LEVEL_FLASH = re.compile(r"^(?:import|from)\s+flash_attn\b", re.MULTILINE)


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a pip name), ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _satisfies(version: str, specifier: str) -> bool | None:
    """Whether ``version`` is in ``specifier`` (PEP 440); ``None`` when ``packaging`` is missing."""
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:
        return None
    return Version(version) in SpecifierSet(specifier, prereleases=True)


def imports_flash_attn_at_top(folder: str | os.PathLike[str]) -> list[str]:
    """The ``.py`` files in ``folder`` that import ``flash_attn`` at module top (not inside try/if).

    Such remote code fails to import without flash-attn, whatever ``attn_implementation`` says.
    """
    path = Path(folder)
    if not path.is_dir():
        return []
    hits = []
    for file in sorted(path.glob("*.py")):
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _TOP_LEVEL_FLASH.search(text):
            hits.append(file.name)
    return hits


@dataclass(frozen=True)
class EnvironmentReport:
    """What :func:`diagnose` found for one model.

    Attributes:
        model: the model's alias (or folder).
        revision: the revision checked (``None``: a local folder or nothing pinned).
        environment: the :data:`~pagesight.models.registry.ENVIRONMENTS` row, ``None`` when
            pagesight knows no constraint for the model.
        flash_attn: ``"required"``, ``"recommended"`` or ``"no"``.
        installed: pip name -> installed version (``None``: not installed) of what was checked.
        problems: why the installed packages cannot run the model (empty: they can).
        pip: the pip line that installs a working set (``""`` when nothing is needed).
    """

    model: str
    revision: str | None
    environment: ModelEnvironment | None
    flash_attn: str
    installed: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    pip: str = ""

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def lines(self) -> list[str]:
        """The report as the lines ``pagesight doctor`` prints."""
        env = self.environment
        out = [
            f"model: {self.model}",
            f"revision: {self.revision or '(none pinned / local folder)'}",
            f"environment: {env.name if env else '(no known constraint)'}",
        ]
        if env is not None:
            out.append(f"transformers: {env.transformers}")
            out.append(f"other packages: {', '.join(env.packages) or '-'}")
            out.append(f"source: {env.source}")
        out.append(f"flash-attn: {self.flash_attn}")
        for name, version in self.installed.items():
            out.append(f"installed {name}: {version or 'not installed'}")
        if self.ok:
            out.append("status: OK, the installed packages can run this model")
        else:
            out.extend(f"problem: {p}" for p in self.problems)
            out.append(f"fix: {self.pip}")
        return out


def diagnose(spec: ModelSpec, revision: str | None = None, device: str | None = None) -> EnvironmentReport:
    """Compare the installed packages with what ``spec`` needs at ``revision``.

    Args:
        spec: the model (a registry row, or an ad-hoc spec of a folder).
        revision: the revision to be loaded (``None``: the spec's pinned one).
        device: the torch device it will run on (``None``: not known yet; a model that needs
            flash-attn is then only checked for the package).
    """
    revision = revision or spec.revision
    env = environment_for(spec, revision)
    flash = spec.flash_attn or (env.flash_attn if env else "no")
    problems: list[str] = []
    installed: dict[str, str | None] = {}
    pip = env.pip if env else ""
    if spec.path is not None:
        top = imports_flash_attn_at_top(spec.path)
        if top:
            flash = "required"
            if not pip:
                pip = _FLASH_PIP
            detail = f"{', '.join(top)} import flash_attn at module top"
        else:
            detail = ""
    else:
        detail = ""
    if env is not None:
        version = installed_version("transformers")
        installed["transformers"] = version
        if version is None:
            problems.append(
                f"transformers is not installed; {spec.alias} needs transformers{env.transformers}"
            )
        elif _satisfies(version, env.transformers) is False:
            problems.append(
                f"transformers {version} is installed; {spec.alias}"
                f"{'@' + revision[:8] if revision else ''} runs with transformers{env.transformers} "
                f"({env.source})"
            )
        for requirement in env.packages:
            name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
            have = installed_version(name)
            installed[name] = have
            if have is None:
                problems.append(f"{name} is not installed; {spec.alias}'s code imports it")
    if flash == "required":
        have = installed_version("flash-attn") if importlib.util.find_spec("flash_attn") else None
        installed["flash-attn"] = have
        why = detail or f"{spec.alias}'s remote code imports flash_attn at module top"
        if have is None:
            problems.append(
                f"flash-attn is not installed and {why}: it cannot load with sdpa or eager attention. "
                f"Install it on a CUDA machine: {_FLASH_PIP}"
            )
        if device is not None and not device.startswith("cuda"):
            problems.append(
                f"{spec.alias} needs flash-attention 2, which runs on CUDA GPUs only (device={device!r})"
            )
    return EnvironmentReport(
        model=spec.alias,
        revision=revision if spec.path is None else None,
        environment=env,
        flash_attn=flash,
        installed=installed,
        problems=problems,
        pip=pip,
    )


def check_environment(spec: ModelSpec, revision: str | None = None, device: str | None = None) -> None:
    """Refuse, before any download, a model the installed packages cannot run.

    Raises:
        ModelNotAvailableError: naming what is wrong and the exact pip line (skipped when the
            environment variable ``PAGESIGHT_SKIP_ENV_CHECK`` is ``1``).
    """
    if os.environ.get(SKIP_ENV) == "1":
        return
    report = diagnose(spec, revision, device)
    if report.ok:
        return
    where = f" at revision {report.revision}" if report.revision else ""
    raise ModelNotAvailableError(
        f"the installed packages cannot run {spec.alias}{where}: "
        + "; ".join(report.problems)
        + f". Install a working set in a separate environment: {report.pip} "
        f"(`pagesight doctor {spec.alias}` prints this report; set {SKIP_ENV}=1 to try anyway)"
    )

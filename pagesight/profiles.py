"""Profiles: coherent stacks of embedder, retrieval mode and generator.

``--profile`` (CLI) and ``profile=`` (Python) pick one; explicit options override it.

| profile   | embedder                                   | retrieval        | reranker | generator  |
|-----------|--------------------------------------------|------------------|----------|------------|
| offline   | all-MiniLM-L6-v2 shipped by a PyPI package | dense + BM25     | none     | extractive |
| offline-late | ``minilm-tokens``: all-MiniLM-L6-v2 token vectors | MaxSim + BM25 | none | extractive |
| ollama    | Ollama ``nomic-embed-text`` (Nomic prefixes) | dense + BM25   | none     | ``gemma3:4b`` |
| gpu       | ``llama-nemotron-embed-vl-1b-v2`` (image + text) | dense + BM25 | rerank-vl-1b-v2 | Qwen3-VL |
| auto      | ``gpu`` with CUDA, its models cached and remote code allowed, else ``offline`` | | | |

Generators: ``gemma3:4b`` through Ollama and ``Qwen/Qwen3-VL-2B-Instruct`` through transformers
both read the page images as well as the page text.

The ``gpu`` profile runs the two NVIDIA models' own code (pinned revisions), so choosing it
allows remote code for them; both are licensed for commercial use (NVIDIA Open Model License).
``auto`` never allows remote code by itself: it picks ``gpu`` only when the caller allows it
(``--trust-remote-code`` / ``trust_remote_code=True``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, assert_never

from pagesight.errors import ConfigurationError, PagesightError
from pagesight.models.base import DensePageEncoder, DenseTextEncoder, LateInteractionEncoder
from pagesight.types import KINDS, EmbedderInfo, Kind, as_kind

__all__ = [
    "Profile",
    "PROFILES",
    "AUTO_DESCRIPTION",
    "profile_option_help",
    "profiles_epilog",
    "resolve_profile",
    "gpu_environment_problems",
    "gpu_ready",
    "encoder_for",
    "embedder_kind",
    "model_kind",
    "page_encoder",
    "is_dense_vl_model",
    "is_late_interaction_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named stack.

    Attributes:
        name: the profile's name.
        embedder: model alias, Hub id, local folder or ``ollama:<name>`` for the page embedder.
        hybrid: fuse BM25 over page text with the dense scores.
        generator: what writes answers (``pagesight ask``, ``pagesight serve``): ``"extractive"``
            (quotes the best passages), ``"ollama:<model>"`` or ``"hf:<model>"``.
        description: one line for the CLI.
        reranker: reranker alias applied to the retrieved pages, or ``None``.
        trust_remote_code: the profile's models run their own code (pinned revisions), and
            choosing the profile allows it.
    """

    name: str
    embedder: str
    hybrid: bool
    generator: str
    description: str
    reranker: str | None = None
    trust_remote_code: bool = False


PROFILES: dict[str, Profile] = {
    "offline": Profile(
        name="offline",
        embedder="all-minilm-l6-v2",
        hybrid=True,
        generator="extractive",
        description="all-MiniLM-L6-v2 (CPU; weights from pagesight[offline]) fused with BM25; "
        "extractive answers",
    ),
    "offline-late": Profile(
        name="offline-late",
        embedder="minilm-tokens",
        hybrid=True,
        generator="extractive",
        description="all-MiniLM-L6-v2 token vectors (late interaction, MaxSim) fused with BM25; "
        "extractive answers",
    ),
    "ollama": Profile(
        name="ollama",
        embedder="ollama:nomic-embed-text",
        hybrid=True,
        generator="ollama:gemma3:4b",
        description="Ollama nomic-embed-text fused with BM25; answers by Ollama gemma3:4b from page text "
        "and images",
    ),
    "gpu": Profile(
        name="gpu",
        embedder="llama-nemotron-embed-vl-1b-v2",
        hybrid=True,
        generator="hf:Qwen/Qwen3-VL-2B-Instruct",
        description="NVIDIA llama-nemotron-embed-vl-1b-v2 (page image + text, CUDA) fused with BM25, "
        "reranked by llama-nemotron-rerank-vl-1b-v2; answers by Qwen3-VL-2B-Instruct from page images",
        reranker="llama-nemotron-rerank-vl-1b-v2",
        trust_remote_code=True,
    ),
}


AUTO_DESCRIPTION = (
    "gpu when CUDA is available, both gpu models are in the Hugging Face cache, the installed "
    "packages can run them (pagesight doctor MODEL) and remote code is allowed (--trust-remote-code), "
    "else offline; it says which and why"
)
"""What ``auto`` picks (one line, as :attr:`Profile.description`)."""


def profile_option_help(*, generator: bool) -> str:
    """The ``--profile`` help of ``pagesight search``/``eval`` (``generator=False``) and ``ask``."""
    brings = ("generator, " if generator else "") + "reranker and remote-code consent"
    default = "extractive answers, no reranker" if generator else "no reranker"
    names = " | ".join([*PROFILES, "auto"])
    return f"take the {brings} of a profile: {names} (default: none: {default}; profiles listed below)"


def profiles_epilog(width: int = 79) -> str:
    """The profiles with their descriptions: the epilog of ``--help`` of the commands taking ``--profile``."""
    import textwrap

    rows = [(p.name, p.description) for p in PROFILES.values()] + [("auto", AUTO_DESCRIPTION)]
    lines = ["profiles (--profile):"]
    for name, text in rows:
        lines += textwrap.wrap(
            text, width, initial_indent=f"  {name:<13} ", subsequent_indent=" " * 16, break_on_hyphens=False
        )
    return "\n".join(lines)


def resolve_profile(name: str | None, *, trust_remote_code: bool = False) -> tuple[Profile, str]:
    """Return the profile called ``name`` and a sentence saying why it was chosen.

    ``None`` and ``"auto"`` choose ``gpu`` when CUDA is available, both of its models are in the
    Hugging Face cache at their pinned revisions, the installed packages can run them (the check of
    :func:`~pagesight.models.environment.diagnose`, ``pagesight doctor``) and ``trust_remote_code``
    is true (the models run
    their own code, which ``auto`` never allows by itself), else ``offline`` (it needs nothing but
    pip); the sentence says which and why.

    Raises:
        ConfigurationError: for an unknown name, listing the known ones.
    """
    if name in (None, "auto"):
        ready, reason = gpu_ready()
        if ready and trust_remote_code:
            return PROFILES["gpu"], f"auto chose 'gpu': {reason}"
        if ready:
            reason += (
                ", but its models run their own code: pass --trust-remote-code (or --profile gpu) to use them"
            )
        return PROFILES["offline"], f"auto chose 'offline': {reason}"
    try:
        return PROFILES[name], f"profile '{name}' as requested"
    except KeyError:
        known = ", ".join(sorted([*PROFILES, "auto"]))
        raise ConfigurationError(f"unknown profile {name!r}; choose one of: {known}") from None


def gpu_ready() -> tuple[bool, str]:
    """Whether the ``gpu`` profile can run here without downloading, and why (or why not)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed"
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA GPU is available"
    from pagesight.models.registry import resolve_dense_vl
    from pagesight.models.rerank import resolve_reranker

    profile = PROFILES["gpu"]
    specs = [resolve_dense_vl(profile.embedder), resolve_reranker(profile.reranker or "")]
    missing = [spec.hf_id or spec.alias for spec in specs if not _in_hf_cache(spec.hf_id, spec.revision)]
    if missing:
        return False, f"CUDA is available but {', '.join(missing)} is not downloaded (hf download <id>)"
    cannot = gpu_environment_problems()
    if cannot:
        return False, f"CUDA is available and the weights are cached, but {cannot}"
    return True, "CUDA is available and the embed-vl and rerank-vl weights are cached"


def gpu_environment_problems() -> str:
    """Why the installed packages cannot run the ``gpu`` profile's models (``""``: they can).

    The per-model check that loading runs (:func:`~pagesight.models.environment.diagnose`: the
    transformers versions, flash-attn and the other packages each model's code imports), for the
    profile's embedder and reranker on CUDA, with the pip line that fixes it. ``""`` as well when
    ``PAGESIGHT_SKIP_ENV_CHECK=1``, which skips that check at load time too.
    """
    from pagesight.models.environment import SKIP_ENV, diagnose
    from pagesight.models.registry import resolve_dense_vl
    from pagesight.models.rerank import resolve_reranker

    if os.environ.get(SKIP_ENV) == "1":
        return ""
    profile = PROFILES["gpu"]
    reports = [
        diagnose(spec, device="cuda")
        for spec in (resolve_dense_vl(profile.embedder), resolve_reranker(profile.reranker or ""))
    ]
    bad = [r for r in reports if not r.ok]
    if not bad:
        return ""
    why = "; ".join(f"{r.model}: {', '.join(r.problems)}" for r in bad)
    fixes = " and ".join(dict.fromkeys(r.pip for r in bad if r.pip))
    return (
        f"the installed packages cannot run its models ({why})"
        + (f"; fix: {fixes}" if fixes else "")
        + f" (pagesight doctor {bad[0].model})"
    )


def _in_hf_cache(hf_id: str | None, revision: str | None) -> bool:
    if hf_id is None:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(hf_id, "config.json", revision=revision)
    return isinstance(found, str)


def is_dense_vl_model(model: str) -> bool:
    """Whether ``model`` names a dense vision-language embedder pagesight knows (CLIP, embed-vl, ...)."""
    from pagesight.models.registry import DENSE_VL

    key = model.strip().lower()
    return key in DENSE_VL or any((s.hf_id or "").lower() == key for s in DENSE_VL.values())


def is_late_interaction_model(model: str) -> bool:
    """Whether ``model`` names a late-interaction (token-vector) model pagesight knows."""
    from pagesight.models.registry import LATE_INTERACTION, resolve_late_interaction

    key = model.strip().lower()
    if key in LATE_INTERACTION:
        return True
    try:
        return resolve_late_interaction(model).kind == "late-interaction"
    except PagesightError:
        return False


# ``pagesight index --embedder`` names each kind in one word.
SHORT_KINDS: dict[str, Kind] = {"dense": "dense-text", "vl": "dense-vl", "late": "late-interaction"}


def embedder_kind(model: str) -> Kind:
    """The kind of embedder ``model`` names (``"dense-text"`` when pagesight does not know it)."""
    if is_late_interaction_model(model):
        return "late-interaction"
    return "dense-vl" if is_dense_vl_model(model) else "dense-text"


def model_kind(model: str) -> str:
    """``"late"``, ``"vl"`` or ``"dense"``: :func:`embedder_kind` in ``--embedder``'s words."""
    kind = embedder_kind(model)
    return next(short for short, long in SHORT_KINDS.items() if long == kind)


def _encoder(
    kind: Kind, model: str, **options: Any
) -> DenseTextEncoder | DensePageEncoder | LateInteractionEncoder:
    """The encoder class of ``kind``, constructed with ``options`` (weights load on first use)."""
    if kind == "late-interaction":
        from pagesight.models.late_interaction import ColEmbedEncoder

        return ColEmbedEncoder(model, **options)
    if kind == "dense-vl":
        from pagesight.models.dense_vl import VLEncoder

        return VLEncoder(model, **options)
    if kind == "dense-text":
        from pagesight.models.dense_text import MatryoshkaEncoder

        return MatryoshkaEncoder(model, **options)
    assert_never(kind)


def encoder_for(
    info: EmbedderInfo, *, trust_remote_code: bool = False
) -> DenseTextEncoder | DensePageEncoder | LateInteractionEncoder:
    """Build the encoder a store was written with, from what the store recorded.

    Args:
        info: the embedder the store recorded.
        trust_remote_code: allow the model's own code (NVIDIA ColEmbed models need it).

    Raises:
        ConfigurationError: when the store was written by a kind of embedder this version cannot load.
    """
    if info.kind not in KINDS:
        raise ConfigurationError(
            f"the store was built with {info.describe()}, a kind this version of pagesight cannot query"
        )
    kind = as_kind(info.kind)
    options: dict[str, Any] = {"revision": info.revision, "trust_remote_code": trust_remote_code}
    model = info.model
    if kind == "dense-vl":
        model, _, text_model = info.model.partition("+")  # "<image model>+<text model>" for a custom pair
        options["text_model"] = text_model or None
    if kind != "late-interaction":
        options["dimensions"] = info.dimensions
    return _encoder(kind, model, **options)


def page_encoder(
    model: str,
    kind: str | None = None,
    *,
    trust_remote_code: bool = False,
    page_input: str = "auto",
    dimensions: int | None = None,
) -> DenseTextEncoder | DensePageEncoder | LateInteractionEncoder:
    """The encoder that indexes pages with ``model`` (constructed; weights load on first use).

    Args:
        model: alias, Hub id, local folder or ``ollama:<name>``.
        kind: a :data:`~pagesight.types.Kind` or its ``--embedder`` word (``"late"``, ``"vl"``,
            ``"dense"``); ``None``: :func:`embedder_kind`.
        trust_remote_code: allow the model's own code (pinned revisions).
        page_input: vision-language and late-interaction models: what of a page is embedded.
        dimensions: Matryoshka truncation (dense and vl models).

    Raises:
        ConfigurationError: an unknown kind, or an option that does not apply to the kind.
    """
    chosen = as_kind(SHORT_KINDS.get(kind, kind)) if kind is not None else embedder_kind(model)
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if chosen == "dense-text" and page_input != "auto":
        raise ConfigurationError("page input applies to vision-language and late-interaction models")
    if chosen == "late-interaction" and dimensions is not None:
        raise ConfigurationError("dimensions apply to dense embedders, not late interaction")
    if chosen != "dense-text":
        options["page_input"] = page_input
    if chosen != "late-interaction":
        options["dimensions"] = dimensions
    return _encoder(chosen, model, **options)

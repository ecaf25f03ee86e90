"""Loading a model that runs its own remote code with ``transformers``, shared by the NVIDIA backends.

:func:`load_pretrained` is the one place that refuses remote code without ``trust_remote_code``,
picks the device, dtype and attention implementation, calls ``from_pretrained`` on a
``transformers`` auto class (falling back to the model's default attention when the model refuses
the one asked for) and turns any loading failure into a :class:`ModelNotAvailableError` that says
what to do: install a missing package, install the transformers version the remote code was
written for, reach the Hub, or fix a local folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from pagesight._deps import SAFE_WEIGHTS, pickle_weights_error, require
from pagesight.errors import ConfigurationError, ModelNotAvailableError
from pagesight.models._hub import check_hub
from pagesight.models._nvidia_compat import (
    attention_report,
    flash_override_error,
    patch_composite_config,
    pin_processor,
)
from pagesight.models._torch import model_source, resolve_device, torch_dtype
from pagesight.models.environment import check_environment
from pagesight.models.registry import TRANSFORMERS_PINS

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec

__all__ = ["LoadSettings", "RemoteModel", "TRANSFORMERS_PINS", "load_pretrained"]

logger = logging.getLogger(__name__)

_REMOTE_MODULES = "transformers_modules"  # where transformers puts remote code it imports


class LoadSettings(Protocol):
    """What :func:`load_pretrained` reads from a backend (a :class:`~pagesight.models.base.ModelBackend`).

    Attributes:
        spec: the model's spec (Hub id + pinned revision, or a local folder).
        revision: the Hub revision to load (the spec's pinned one unless overridden).
        trust_remote_code: must be ``True``; the model is remote code.
        device: torch device (``None``: CUDA when available).
        dtype: weight dtype name (``None``: bfloat16 on CUDA, float32 on CPU).
        attn_implementation: ``None`` picks ``flash_attention_2`` when flash-attn imports (CUDA),
            else ``sdpa``, and falls back to the model's default if the model refuses it; a name
            given here is used as is.
    """

    spec: ModelSpec
    revision: str | None
    trust_remote_code: bool
    device: str | None
    dtype: str | None
    attn_implementation: str | None


class RemoteModel(NamedTuple):
    """What :func:`load_pretrained` returns.

    Attributes:
        model: the loaded model, already moved to ``device`` and in eval mode.
        device: the torch device it is on.
        source: the Hub id or local folder it was loaded from.
        revision: the Hub revision it was loaded at (``None`` for a local folder or an unpinned id).
        extra: what the ``extra`` loading step returned (``None`` without one).
    """

    model: Any
    device: str
    source: str
    revision: str | None
    extra: Any


def load_pretrained(
    settings: LoadSettings,
    auto_class: str,
    *,
    check: Callable[[str, str | None, str], None] | None = None,
    extra: Callable[[ModuleType, str, dict[str, Any]], Any] | None = None,
    log: logging.Logger = logger,
) -> RemoteModel:
    """Load a backend's remote-code model with ``transformers.<auto_class>.from_pretrained``.

    Args:
        settings: the backend (its ``spec``, ``revision``, ``trust_remote_code``, ``device``,
            ``dtype`` and ``attn_implementation``; see :class:`LoadSettings`).
        auto_class: the name of the ``transformers`` auto class, e.g. ``"AutoModel"``.
        check: called with ``(source, revision, installed transformers version)`` before anything
            is loaded; raises to refuse.
        extra: a further loading step, called with ``(transformers, source, kwargs)`` after the
            model loaded, under the same error translation (``kwargs``: ``trust_remote_code`` and
            ``revision``, as the model got them); its result is :attr:`RemoteModel.extra`.
        log: the logger the loading messages go to (the calling backend's).

    Raises:
        ConfigurationError: ``trust_remote_code`` is not ``True``.
        MissingDependencyError: torch or transformers is not installed.
        ModelNotAvailableError: the model (or the extra step) could not be loaded.
    """
    spec, revision, attn_implementation = settings.spec, settings.revision, settings.attn_implementation
    if not settings.trust_remote_code:
        pinned = f" (pinned to revision {revision})" if revision else ""
        raise ConfigurationError(
            f"{spec.alias} runs code from its model repository{pinned}; "
            "pass trust_remote_code=True to allow it"
        )
    require("torch", "gpu")
    transformers = require("transformers", "gpu")
    source, hub_revision = model_source(spec, revision)
    # before any download: the installed versions can run this model (names the pip line)
    check_environment(spec, hub_revision, resolve_device(settings.device))
    if check is not None:
        check(source, hub_revision, transformers.__version__)
    check_hub(source, hub_revision)  # not cached and no Hub: fail now, not after minutes of retries
    where = resolve_device(settings.device)
    kwargs: dict[str, Any] = {"trust_remote_code": True}
    if hub_revision is not None:
        kwargs["revision"] = hub_revision
    weights = torch_dtype(settings.dtype, where)
    dtype_key = "dtype" if _major_minor(transformers.__version__) >= (5, 0) else "torch_dtype"
    model_kwargs = {**kwargs, **SAFE_WEIGHTS, dtype_key: weights}
    attn = attn_implementation or _preferred_attention(where)
    at = f"@{hub_revision}" if hub_revision else ""
    log.info("loading %s%s on %s (%s, %s)", source, at, where, weights, attn)
    auto = getattr(transformers, auto_class)
    try:
        patch_composite_config(transformers, source, kwargs)  # v1 ColEmbed's to_dict (MTEB #3917)
        pin_processor(transformers, source, hub_revision)  # the model's own AutoProcessor calls
        try:
            model = auto.from_pretrained(source, attn_implementation=attn, **model_kwargs)
        except (ValueError, ImportError) as e:
            if attn_implementation is not None or "attn" not in str(e).lower():
                raise
            log.info("%s refuses attn_implementation=%r (%s); using its default", source, attn, e)
            model = auto.from_pretrained(source, **model_kwargs)
        loaded = extra(transformers, source, dict(kwargs)) if extra is not None else None
    except (ModelNotAvailableError, ConfigurationError):
        raise
    except Exception as e:
        forced = flash_override_error(e, spec, source, hub_revision, attn)
        if forced is not None:
            raise forced from e
        raise _load_error(e, spec, source, hub_revision, transformers.__version__) from e
    attention_report(model, attn, source, log)
    return RemoteModel(model.to(where).eval(), where, source, hub_revision, loaded)


def _preferred_attention(device: str) -> str:
    """``flash_attention_2`` on CUDA when flash-attn imports, else ``sdpa``."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _major_minor(version: str) -> tuple[int, ...]:
    """``(major, minor)`` of a version string; ``"5.0.0rc0"`` -> ``(5, 0)``."""
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _raised_in_remote_code(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) passed through imported remote code."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            if _REMOTE_MODULES in frame.filename:
                return True
        current = current.__cause__ or current.__context__
    return False


def _saved_with(source: str) -> str | None:
    """The ``transformers_version`` in a local folder's ``config.json``, if any."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("transformers_version")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) else None


def _load_error(
    e: Exception, spec: ModelSpec, source: str, revision: str | None, installed: str
) -> ModelNotAvailableError:
    """The :class:`ModelNotAvailableError` that says what to do about a failure to load ``source``.

    Args:
        e: what loading raised.
        spec: the model's spec (its Hub id finds the transformers version in :data:`TRANSFORMERS_PINS`).
        source: the Hub id or local folder.
        revision: the Hub revision asked for.
        installed: the installed transformers version.
    """
    text = f"{type(e).__name__}: {str(e)[:400]}"
    if (pickled := pickle_weights_error(e, source)) is not None:
        return pickled
    if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith("transformers"):
        return ModelNotAvailableError(
            f"{source}'s remote code needs the package {e.name!r}: "
            f"pip install {e.name.split('.')[0]} ({text})"
        )
    if "requires the following packages" in str(e):
        return ModelNotAvailableError(f"{source}'s remote code needs more packages: {text}")
    wanted = TRANSFORMERS_PINS.get(spec.hf_id or "") or _saved_with(source)
    remote = _raised_in_remote_code(e) or isinstance(e, (ImportError, AttributeError))
    if wanted and remote and _major_minor(wanted) != _major_minor(installed):
        return ModelNotAvailableError(
            f"{source}'s remote code does not run with the installed transformers {installed} ({text}). "
            f"It was written for transformers {wanted}; install that version in this environment: "
            f'pip install "transformers=={wanted}"'
        )
    if Path(source).is_dir():
        return ModelNotAvailableError(f"could not load the model in {source}: {text}")
    rev = f" at revision {revision}" if revision else ""
    return ModelNotAvailableError(
        f"could not load {source}{rev} from the Hugging Face Hub ({text}). Check the network or "
        "HF_HUB_OFFLINE, accept the model's license on its Hub page and log in (hf auth login), "
        "or pass the path of a downloaded copy as `model`"
    )

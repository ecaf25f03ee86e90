"""What the NVIDIA models' own remote code does on real weights, and what pagesight does about it.

Public deployers' code (MTEB's model wrappers, NVIDIA/NeMo-Retriever's local wrappers) records
behaviour of these models that a plain ``from_pretrained`` does not survive; each helper here
handles one, scoped to the model's own code:

- :func:`patch_composite_config`: the v1 ColEmbed config class declares ``is_composition`` (the
  name transformers used before 4.52) and its ``to_dict`` dereferences ``vision_config``. Newer
  transformers build a default instance (no ``vision_config``) while printing the config, and the
  load crashes ("visual_config crash", MTEB issue #3917 / PR #3925). The class (only that class)
  gets ``has_no_defaults_at_init`` and a ``to_dict`` that survives a missing sub-config, once,
  under a lock.
- :func:`pin_processor`: the models' ``__init__`` / ``_get_processor()`` call
  ``AutoProcessor.from_pretrained(config.name_or_path, trust_remote_code=True)`` without a
  revision, which loads the Hub's ``main`` (and fails offline with only the pinned snapshot
  cached). pagesight registers the pinned revision of each Hub id it loads; an
  ``AutoProcessor.from_pretrained`` call for that id without a ``revision`` gets it.
- :func:`attention_report`: some revisions set ``llm_config._attn_implementation`` themselves;
  the attention actually in use is read back and reported, not the one asked for.
- :func:`flash_override_error`: such a revision without flash-attn installed fails with an
  ImportError about FlashAttention2, which is said as such (not as a Hub problem).
- :func:`serial_dataloaders`: the Qwen3-VL ColEmbed code builds a multi-worker ``DataLoader`` per
  call; the model's modules get a ``DataLoader`` that always runs with ``num_workers=0``.
- :func:`encode_error`: revisions written for another transformers fail at the first encode with
  a ``TypeError`` (e.g. ``create_bidirectional_mask`` arguments, NeMo-Retriever PR #2470), which
  becomes a :class:`~pagesight.errors.ModelNotAvailableError` naming the installed version.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pagesight.errors import ModelNotAvailableError
from pagesight.models.registry import environment_for

if TYPE_CHECKING:
    from pagesight.models.registry import ModelSpec

__all__ = [
    "attention_report",
    "encode_error",
    "flash_override_error",
    "patch_composite_config",
    "pin_processor",
    "pinned_processor_revision",
    "serial_dataloaders",
]

logger = logging.getLogger(__name__)

_REMOTE_MODULES = "transformers_modules"
_PATCH_LOCK = threading.Lock()
_PINS: dict[str, str] = {}  # Hub id -> the revision pagesight loaded it at
_PINS_LOCK = threading.Lock()
_PATCHED_MARK = "_pagesight_tolerant_to_dict"


# -- the composite-config to_dict bug (v1 ColEmbed) -----------------------------------------------


def _config_json(transformers: ModuleType, source: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    local = Path(source) / "config.json"
    try:
        if local.is_file():
            path = str(local)
        else:
            path = transformers.utils.cached_file(source, "config.json", revision=kwargs.get("revision"))
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception as e:  # no config to read: from_pretrained will say what is wrong
        logger.debug("could not read %s's config.json: %s", source, e)
        return {}
    return data if isinstance(data, dict) else {}


def patch_composite_config(transformers: ModuleType, source: str, kwargs: dict[str, Any]) -> bool:
    """Make ``source``'s remote config class survive transformers' default-instance ``to_dict``.

    Only a remote config class (``auto_map["AutoConfig"]``) that defines its own ``to_dict`` or
    declares ``is_composition`` is touched, once per class, under a lock. Returns whether it was.

    Args:
        transformers: the imported ``transformers`` module.
        source: the Hub id or local folder.
        kwargs: ``revision`` (and ``trust_remote_code``) as the model gets them.
    """
    auto_map = _config_json(transformers, source, kwargs).get("auto_map")
    reference = auto_map.get("AutoConfig") if isinstance(auto_map, dict) else None
    if not isinstance(reference, str):
        return False
    try:
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        cls: Any = get_class_from_dynamic_module(reference, source, revision=kwargs.get("revision"))
    except Exception as e:  # from_pretrained will raise the real error
        logger.debug("could not import %s's config class %s: %s", source, reference, e)
        return False
    own_to_dict = "to_dict" in vars(cls)
    composition = bool(getattr(cls, "is_composition", False))
    if not (own_to_dict or composition):
        return False
    with _PATCH_LOCK:
        if getattr(cls, _PATCHED_MARK, False):
            return True
        if composition and not getattr(cls, "has_no_defaults_at_init", False):
            # transformers >= 4.52 reads has_no_defaults_at_init where it read is_composition
            cls.has_no_defaults_at_init = True
        if own_to_dict:
            cls.to_dict = _tolerant_to_dict(cls.to_dict, transformers.PretrainedConfig)
        setattr(cls, _PATCHED_MARK, True)
    logger.info("%s: config class %s made safe for this transformers' to_dict", source, cls.__name__)
    return True


def _tolerant_to_dict(original: Any, base: Any) -> Any:
    def to_dict(self: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = original(self)
            return out
        except AttributeError:  # a sub-config (vision_config, llm_config) is missing
            data: dict[str, Any] = base.to_dict(self)
            return {k: (v.to_dict() if isinstance(v, base) else v) for k, v in data.items()}

    to_dict.__wrapped__ = original  # type: ignore[attr-defined]
    return to_dict


# -- processors loaded by the model's own code ------------------------------------------------


def pinned_processor_revision(name: object) -> str | None:
    """The revision pagesight pinned for Hub id ``name``, if any."""
    with _PINS_LOCK:
        return _PINS.get(name) if isinstance(name, str) else None


def pin_processor(transformers: ModuleType, source: str, revision: str | None) -> None:
    """Make the model's own unpinned ``AutoProcessor.from_pretrained(source)`` load ``revision``.

    ``AutoProcessor.from_pretrained`` gets a wrapper (installed once) that adds
    ``revision=<pin>`` to a call for a Hub id pagesight pinned, when the call gives none. Calls
    for other ids, and calls that pass a revision, are untouched.
    """
    if revision is None or Path(source).is_dir():
        return
    with _PINS_LOCK:
        _PINS[source] = revision
    auto = transformers.AutoProcessor
    with _PATCH_LOCK:
        if getattr(auto.from_pretrained, "_pagesight_pins", False):
            return
        original = auto.from_pretrained

        def from_pretrained(cls: Any, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
            pin = pinned_processor_revision(pretrained_model_name_or_path)
            if pin is not None and kwargs.get("revision") is None:
                kwargs["revision"] = pin
            return original(pretrained_model_name_or_path, *args, **kwargs)

        from_pretrained._pagesight_pins = True  # type: ignore[attr-defined]
        auto.from_pretrained = classmethod(from_pretrained)


# -- attention ----------------------------------------------------------------------------------


def _sub_configs(config: Any) -> dict[str, Any]:
    out = {"config": config}
    for name in ("llm_config", "text_config", "vision_config"):
        sub = getattr(config, name, None)
        if sub is not None and hasattr(sub, "_attn_implementation"):
            out[name] = sub
    return out


def attention_report(model: Any, asked: str, source: str, log: logging.Logger = logger) -> dict[str, str]:
    """The attention implementation each (sub-)config of the loaded ``model`` really uses.

    Logs a warning naming the sub-config when the model's code chose another one than ``asked``.
    """
    config = getattr(model, "config", None)
    if config is None:
        return {}
    used: dict[str, str] = {}
    for name, sub in _sub_configs(config).items():
        value = getattr(sub, "_attn_implementation", None)
        if isinstance(value, str):
            used[name] = value
    overridden = {name: value for name, value in used.items() if value != asked}
    if overridden:
        what = ", ".join(f"{name}={value}" for name, value in overridden.items())
        log.warning(
            "%s: attn_implementation=%r was asked, but the model's own code set %s; that is what runs",
            source,
            asked,
            what,
        )
    return used


def flash_override_error(
    e: BaseException, spec: ModelSpec, source: str, revision: str | None, asked: str
) -> ModelNotAvailableError | None:
    """A truthful error for a model whose code turned flash-attention 2 on without flash-attn installed."""
    text = str(e)
    toggled = "flashattention" in text.lower() or "flash_attention" in text.lower()
    if isinstance(e, ModuleNotFoundError) or not toggled or asked == "flash_attention_2":
        return None
    at = f"@{revision}" if revision else ""
    pins = ""
    env = environment_for(spec, revision)
    if spec.revision and revision != spec.revision:
        pins = f", or load the current pin (revision={spec.revision!r})"
    fix = env.pip if env else "pip install flash-attn --no-build-isolation"
    return ModelNotAvailableError(
        f"{source}{at}'s remote code switches its attention to flash_attention_2 itself (overriding "
        f"attn_implementation={asked!r}), and flash-attn cannot be used here ({type(e).__name__}: "
        f"{text[:300]}). This is not a download problem: install flash-attn on a CUDA machine "
        f"(pip install flash-attn --no-build-isolation; working set: {fix}){pins}"
    )


# -- DataLoader workers ---------------------------------------------------------------------------


def _serial_loader_class(loader: type) -> type:
    class SerialDataLoader(loader):
        """``torch.utils.data.DataLoader`` with ``num_workers=0`` (pagesight: no worker processes)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["num_workers"] = 0
            kwargs.pop("prefetch_factor", None)
            kwargs["persistent_workers"] = False
            super().__init__(*args, **kwargs)

    return SerialDataLoader


def serial_dataloaders(model: Any) -> list[str]:
    """Give the model's remote-code modules a ``DataLoader`` that never starts worker processes.

    The Qwen3-VL ColEmbed code builds ``DataLoader(..., num_workers=8)`` on every call, which
    forks 8 processes per query. Only modules of the model's own remote package that import the
    name ``DataLoader`` are changed; returns their names.
    """
    from torch.utils.data import DataLoader

    module = type(model).__module__
    if _REMOTE_MODULES not in module:
        return []
    package = module.rsplit(".", 1)[0]
    serial = _serial_loader_class(DataLoader)
    changed = []
    with _PATCH_LOCK:
        for name, mod in list(sys.modules.items()):
            if not name.startswith(package) or mod is None:
                continue
            current = getattr(mod, "DataLoader", None)
            if current is DataLoader:
                mod.DataLoader = serial  # type: ignore[attr-defined]
                changed.append(name)
            elif isinstance(current, type) and current.__name__ == "SerialDataLoader":
                changed.append(name)
    if changed:
        logger.info("%s: DataLoader runs with num_workers=0 in %s", module, ", ".join(changed))
    return changed


# -- errors at the first encode --------------------------------------------------------------------


def _raised_in_remote_code(error: BaseException) -> bool:
    import traceback

    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(_REMOTE_MODULES in f.filename for f in traceback.extract_tb(current.__traceback__)):
            return True
        current = current.__cause__ or current.__context__
    return False


def encode_error(e: BaseException, spec: ModelSpec, revision: str | None) -> ModelNotAvailableError | None:
    """A :class:`ModelNotAvailableError` for a ``TypeError`` the remote code raised at encode time.

    Such errors (a transformers function called with arguments it no longer takes) mean the
    revision was written for another transformers; ``None`` for anything else.
    """
    if not isinstance(e, TypeError) or not _raised_in_remote_code(e):
        return None
    from pagesight.models.environment import installed_version

    installed = installed_version("transformers") or "(unknown)"
    env = environment_for(spec, revision)
    at = f" at revision {revision}" if revision else ""
    hints = []
    if spec.revision and revision and revision != spec.revision:
        hints.append(f"load pagesight's current pin (revision={spec.revision!r}, drop `revision=`)")
    if env is not None:
        hints.append(f"install transformers{env.transformers} ({env.pip})")
    else:
        hints.append("install the transformers version the model's card names")
    return ModelNotAvailableError(
        f"{spec.alias}{at}: its remote code failed at the first encode with transformers {installed} "
        f"({type(e).__name__}: {str(e)[:300]}); that revision was written for another transformers. "
        + "; or ".join(hints)
    )

"""Import optional dependencies with an actionable message; the safetensors-only weights policy.

pagesight never unpickles model weights: every call that loads weights passes
:data:`SAFE_WEIGHTS` (``use_safetensors=True``), and :func:`pickle_weights_error` turns the
failure of a model that has only pickle weights (``pytorch_model.bin``) into a
:class:`ModelNotAvailableError` that says how to convert it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Final

from pagesight.errors import MissingDependencyError, ModelNotAvailableError

SAFE_WEIGHTS: Final[Mapping[str, bool]] = MappingProxyType({"use_safetensors": True})
"""Keyword arguments for every weight-loading ``from_pretrained`` (directly, or through a
sentence-transformers ``model_kwargs``): load ``*.safetensors`` only, never pickle."""

_PICKLE_SUFFIXES = (".bin", ".bin.index.json")
_SAFE_SUFFIXES = (".safetensors", ".safetensors.index.json")
# What transformers raises (OSError) when use_safetensors=True finds no safetensors file:
# "Error no file named model.safetensors found in directory <folder>." (a local folder) or
# "<id> does not appear to have a file named model.safetensors ... cannot be loaded with `safetensors`" (Hub).
_NO_SAFETENSORS = ("no file named model.safetensors", "cannot be loaded with `safetensors`")


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra.

    Args:
        module: dotted module name, e.g. ``"chromadb"``.
        extra: the pagesight extra that installs it, e.g. ``"chroma"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f'{module} is not installed; install it with: pip install "pagesight[{extra}]"'
        ) from e


def _pickle_only_folder(source: str, *, modules_only: bool = False) -> bool:
    """Whether the local folder ``source``, or one of its subfolders (a sentence-transformers
    module), holds ``pytorch_model*.bin`` weights and no safetensors next to them.

    ``modules_only``: look at the subfolders only.
    """
    root = Path(source)
    try:
        subfolders = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
        for folder in subfolders if modules_only else [root, *subfolders]:
            names = [f.name for f in folder.iterdir()]
            pickles = any(n.startswith("pytorch_model") and n.endswith(_PICKLE_SUFFIXES) for n in names)
            if pickles and not any(n.endswith(_SAFE_SUFFIXES) for n in names):
                return True
    except OSError:  # unreadable: leave the error to the caller's own message
        return False
    return False


def refuse_pickle_modules(source: str) -> None:
    """Refuse a local sentence-transformers folder whose modules (``2_Dense/``, ...) hold only pickle
    weights, before loading it: sentence-transformers would read those with ``torch.load``.

    The transformer itself is covered by :data:`SAFE_WEIGHTS`; a Hub model's modules cannot be
    checked before they are downloaded.

    Raises:
        ModelNotAvailableError: such a module was found (the message says how to convert it).
    """
    if _pickle_only_folder(source, modules_only=True):
        raise _pickle_error(source, pickle_only=True)


def pickle_weights_error(error: BaseException, source: str) -> ModelNotAvailableError | None:
    """The :class:`ModelNotAvailableError` to raise when ``source`` failed to load for want of
    safetensors weights (a model that ships only pickle weights), else ``None``.

    Args:
        error: what loading ``source`` with :data:`SAFE_WEIGHTS` raised.
        source: the Hub id or local folder that was loaded.
    """
    text = str(error)
    pickle_only = _pickle_only_folder(source)
    if not (pickle_only or (isinstance(error, OSError) and any(m in text for m in _NO_SAFETENSORS))):
        return None
    return _pickle_error(source, pickle_only=pickle_only)


def _pickle_error(source: str, *, pickle_only: bool) -> ModelNotAvailableError:
    what = (
        "ships only pickle weights (pytorch_model.bin)"
        if pickle_only
        else "has no safetensors weights (model.safetensors)"
    )
    return ModelNotAvailableError(
        f"{source} {what}; pagesight loads only safetensors weights (no pickle). Convert the model once, "
        "where you trust it: `model.save_pretrained(folder, safe_serialization=True)` "
        "(or `SentenceTransformer(...).save(folder)`), and pass that folder"
    )


def lazy_attribute(package: str, name: str, table: Mapping[str, tuple[str, str | None]]) -> Any:
    """``name`` from the module ``table`` maps it to (``name -> (module, extra)``), imported now.

    What a package's module-level ``__getattr__`` returns, so importing the package stays light.
    A missing dependency of a name with an ``extra`` raises ``ImportError`` naming the
    ``pip install "pagesight[extra]"`` line.

    Raises:
        AttributeError: ``name`` is not in ``table``.
    """
    if name not in table:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module, extra = table[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        if extra is None:
            raise
        raise ImportError(
            f"{name} needs an optional dependency ({e.name or e}); "
            f'install it with: pip install "pagesight[{extra}]"'
        ) from e
    return getattr(mod, name)

"""The once-per-model warning for weights licensed for non-commercial use only."""

from __future__ import annotations

import logging
import threading
import warnings

from pagesight.models.registry import ModelSpec

__all__ = ["warn_non_commercial"]

logger = logging.getLogger(__name__)

_WARNED_LICENSES: set[str] = set()
_WARNED_LOCK = threading.Lock()


def warn_non_commercial(spec: ModelSpec, *, stacklevel: int = 3) -> None:
    """Log and warn, once per model and process, that ``spec``'s weights are non-commercial.

    Args:
        spec: the chosen model (``commercial_use`` is ``False``).
        stacklevel: passed to :func:`warnings.warn`; the default points at the caller of the
            constructor that calls this.
    """
    key = spec.hf_id or spec.alias
    with _WARNED_LOCK:
        if key in _WARNED_LICENSES:
            return
        _WARNED_LICENSES.add(key)
    message = (
        f"{key} is licensed for non-commercial / research use only ({spec.license}); "
        "read its model card before using it in a product"
    )
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=stacklevel)

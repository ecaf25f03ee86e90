"""One place for the range and choice checks on options (the messages name the option).

Use::

    from pagesight._checks import check_int, check_number, check_choice

    check_int("batch_size", batch_size, least=1)   # `batch_size` must be an integer of at least 1, got 0
    check_int("dimensions", dims, least=64, most=768, where="for nomic-embed-text-v1.5")
    check_number("timeout", timeout, above=0)      # finite and > 0
    check_choice("mode", mode, ("hybrid", "dense", "bm25"))
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from pagesight.errors import ConfigurationError

__all__ = ["check_int", "check_number", "check_choice"]

T = TypeVar("T")


def _suffix(where: str) -> str:
    return f" {where}" if where else ""


def check_int(
    name: str,
    value: Any,
    *,
    least: int | None = None,
    most: int | None = None,
    where: str = "",
    optional: bool = False,
) -> Any:
    """Return ``value`` when it is an ``int`` (not a ``bool``) within ``[least, most]``.

    Args:
        name: the option's name as the caller writes it (``"k"``, ``"max_pages"``).
        value: what was given.
        least: smallest allowed value, or ``None`` for no bound.
        most: largest allowed value, or ``None`` for no bound.
        where: words appended to the range (``"for all-MiniLM-L6-v2"``).
        optional: ``None`` is allowed (and returned).

    Raises:
        ConfigurationError: naming the option, the range and what was given.
    """
    if value is None and optional:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    in_range = is_int and (least is None or value >= least) and (most is None or value <= most)
    if not in_range:
        raise ConfigurationError(
            f"`{name}` must be an integer{_range(least, most)}{_suffix(where)}, got {value!r}"
        )
    return value


def check_number(
    name: str,
    value: Any,
    *,
    above: float | None = None,
    least: float | None = None,
    most: float | None = None,
    where: str = "",
    optional: bool = False,
) -> Any:
    """Return ``value`` when it is a finite real number within the bounds (``above`` is exclusive).

    Raises:
        ConfigurationError: naming the option, the bounds and what was given.
    """
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and above is not None and not value > above:
        ok = False
    if ok and least is not None and value < least:
        ok = False
    if ok and most is not None and value > most:
        ok = False
    if not ok:
        parts = []
        if above is not None:
            parts.append(f"greater than {above:g}")
        if least is not None:
            parts.append(f"at least {least:g}")
        if most is not None:
            parts.append(f"at most {most:g}")
        bounds = (" " + " and ".join(parts)) if parts else ""
        raise ConfigurationError(f"`{name}` must be a finite number{bounds}{_suffix(where)}, got {value!r}")
    return value


def check_choice(name: str, value: T, choices: Iterable[T], *, where: str = "") -> T:
    """Return ``value`` when it is one of ``choices``.

    Raises:
        ConfigurationError: naming the option, the choices and what was given.
    """
    allowed = list(choices)
    if value not in allowed:
        shown = ", ".join(repr(c) for c in allowed)
        raise ConfigurationError(f"`{name}` must be one of {shown}{_suffix(where)}, got {value!r}")
    return value


def _range(least: int | None, most: int | None) -> str:
    if least is not None and most is not None:
        return f" between {least} and {most}"
    if least is not None:
        return f" of at least {least}"
    return f" of at most {most}" if most is not None else ""

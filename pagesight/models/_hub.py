"""Fail in seconds, not minutes, when a Hub model is neither cached nor downloadable.

Without network, ``from_pretrained`` of a model that is not in the local Hugging Face cache retries
for about 75 s before it gives up. :func:`check_hub` runs before such a load: a model in the cache
(or a local folder) passes at once; otherwise one request to the Hub's endpoint (``$HF_ENDPOINT``,
default ``https://huggingface.co``), with a 3 s timeout, tells whether a download can work, and
:class:`~pagesight.errors.ModelNotAvailableError` is raised when it cannot. With ``HF_HUB_OFFLINE``
set there is no request: the loader itself fails at once (and names what to do).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from pagesight.errors import ModelNotAvailableError

__all__ = ["PROBE_TIMEOUT_S", "check_hub", "hub_endpoint", "hub_offline", "hub_problem", "is_cached"]

PROBE_TIMEOUT_S = 3.0
"""Seconds the reachability request may take (connect and answer)."""

_PROBE_TTL_S = 30.0  # a long-running process (pagesight serve) asks again after this
_PROBES: dict[str, tuple[float, str | None]] = {}
_PROBES_LOCK = threading.Lock()
_MARKER_FILES = ("config.json", "modules.json")  # a transformers model / a sentence-transformers one
_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    """The Hub the downloads would go to: ``$HF_ENDPOINT``, else ``https://huggingface.co``."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def is_cached(repo_id: str, revision: str | None) -> bool:
    """Whether ``repo_id`` at ``revision`` (``None``: ``main``) is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no huggingface_hub: the loader will say what is missing
        return True
    for name in _MARKER_FILES:
        try:
            found = try_to_load_from_cache(repo_id, name, revision=revision)
        except Exception:  # an id the cache cannot hold (a path, a malformed id): leave it to the loader
            return True
        if isinstance(found, str):
            return True
    return False


def _probe(endpoint: str) -> str | None:
    """``None`` when ``endpoint`` answers HTTP at all, else why not (one request, cached briefly)."""
    now = time.monotonic()
    with _PROBES_LOCK:
        seen = _PROBES.get(endpoint)
        if seen is not None and now - seen[0] < _PROBE_TTL_S:
            return seen[1]
    import httpx

    try:
        httpx.head(endpoint, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
        problem = None
    except httpx.TimeoutException:
        problem = f"no answer within {PROBE_TIMEOUT_S:g} s"
    except (httpx.HTTPError, OSError, ValueError) as e:
        problem = f"{type(e).__name__}: {e}"
    with _PROBES_LOCK:
        _PROBES[endpoint] = (time.monotonic(), problem)
    return problem


def hub_problem(repo_id: str, revision: str | None) -> str | None:
    """Why ``repo_id`` cannot be downloaded now, or ``None`` when loading it may work.

    ``None`` for a local folder, a cached model, or with ``HF_HUB_OFFLINE`` set (no request is
    made; the loader then uses the cache only and fails at once).
    """
    if Path(repo_id).expanduser().is_dir() or is_cached(repo_id, revision) or hub_offline():
        return None
    endpoint = hub_endpoint()
    problem = _probe(endpoint)
    if problem is None:
        return None
    return f"the Hugging Face Hub at {endpoint} cannot be reached ({problem})"


def check_hub(repo_id: str, revision: str | None, *, hint: str = "") -> None:
    """Raise at once when ``repo_id`` is not in the cache and the Hub cannot be reached.

    Args:
        repo_id: the Hub id about to be loaded (a local folder passes).
        revision: the revision to load (``None``: the default branch).
        hint: what else to say (e.g. the pip line of a package that ships the weights).

    Raises:
        ModelNotAvailableError: naming the model, why, how to get it, and ``HF_HUB_OFFLINE``.
    """
    problem = hub_problem(repo_id, revision)
    if problem is None:
        return
    at = f" at revision {revision}" if revision else ""
    rev = f" --revision {revision}" if revision else ""
    folder = repo_id.rstrip("/").split("/")[-1]
    raise ModelNotAvailableError(
        f"cannot load {repo_id}{at}: it is not in the local Hugging Face cache and {problem}. "
        + (f"{hint}. " if hint else "")
        + "Download it once where the Hub is reachable: "
        f"`hf download {repo_id}{rev} --local-dir ./{folder}` "
        f"(or `huggingface-cli download {repo_id}{rev}`), and pass model='./{folder}' (the path of a "
        "downloaded copy). Set HF_HUB_OFFLINE=1 on a machine without network: pagesight then uses the "
        "local cache only and makes no request"
    )

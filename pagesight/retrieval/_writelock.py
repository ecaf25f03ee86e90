"""One writing process per embedded store: an advisory lock file in the store's folder.

Chroma's embedded mode (``PersistentClient``) is not safe for several processes writing one folder:
each keeps its own HNSW index in memory and flushes it over the other's. :class:`WriteLock` lets one
process at a time write: the first write of a :class:`~pagesight.retrieval.store.PageStore` takes an
exclusive ``fcntl.flock`` on ``<store>/pagesight.lock`` (the holder's pid written inside for the
message others get) and keeps it until the store is closed. Threads and store objects of the same
process share it (a process-wide count per folder). The kernel releases the lock when the holder
dies, SIGKILL included, so a crash never leaves the store locked.

Readers do not take the lock; the repair a store runs when it is opened takes it only if it is free
(a writer in another process does its own repairs).

Windows has no ``flock``: there the lock is not taken (one writing process per store is then up to
the user, as with Chroma itself); threads of one process are still serialized by the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

from pagesight.errors import StoreError

__all__ = ["LOCK_NAME", "WriteLock"]

logger = logging.getLogger(__name__)

LOCK_NAME = "pagesight.lock"
_POLL_S = 0.05

_registry_lock = threading.Lock()
_held: dict[str, tuple[int, IO[bytes], int]] = {}  # folder -> (pid, open lock file, holders)


class WriteLock:
    """The write lock of one store folder (see the module docstring).

    Args:
        folder: the store's folder (created if missing).
        location: how error messages name the store.
    """

    def __init__(self, folder: Path, location: str) -> None:
        self._folder = folder
        self._location = location
        self._key_cache: str | None = None

    @property
    def _key(self) -> str:
        """The folder's real path (once it exists): every handle of one folder shares an entry."""
        if self._key_cache is None:
            self._folder.mkdir(parents=True, exist_ok=True)
            self._key_cache = str(self._folder.resolve())
        return self._key_cache

    @property
    def path(self) -> Path:
        """The lock file."""
        return self._folder / LOCK_NAME

    def acquire(self, timeout: float) -> None:
        """Take the lock (or one more hold of it in this process), waiting at most ``timeout`` s.

        Raises:
            StoreError: another process holds it; names that process's pid.
        """
        if not self._take(blocking_for=max(0.0, timeout)):
            pid = self.holder_pid()
            raise StoreError(
                f"store {self._location} is being written by another process (pid {pid or 'unknown'}); "
                "wait for it to finish, or use a Chroma server (`chroma run`, then "
                "--store http://HOST:PORT or PageStore(url=...)) for several writing processes"
            )

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; return whether it was taken."""
        return self._take(blocking_for=None)

    def release(self) -> None:
        """Give back one hold; the lock file is closed (and the lock released) with the last."""
        with _registry_lock:
            entry = _held.get(self._key)
            if entry is None or entry[0] != os.getpid():
                return
            pid, f, count = entry
            if count > 1:
                _held[self._key] = (pid, f, count - 1)
                return
            del _held[self._key]
        with contextlib.suppress(OSError):
            f.close()  # closing the descriptor releases the flock

    # -- internals -------------------------------------------------------------------------------

    def _take(self, blocking_for: float | None) -> bool:
        try:
            import fcntl
        except ImportError:  # Windows: no inter-process lock (see the module docstring)
            return True
        deadline = None if blocking_for is None else time.monotonic() + blocking_for
        while True:
            with _registry_lock:
                entry = _held.get(self._key)
                if entry is not None and entry[0] == os.getpid():  # this process holds it: one more hold
                    _held[self._key] = (entry[0], entry[1], entry[2] + 1)
                    return True
                f = open(self.path, "a+b")  # noqa: SIM115 - held until release()
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    f.close()
                else:
                    f.seek(0)
                    f.truncate()
                    f.write(str(os.getpid()).encode())
                    f.flush()
                    _held[self._key] = (os.getpid(), f, 1)
                    return True
            if deadline is None or time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)

    def holder_pid(self) -> int | None:
        """The pid the holder wrote into the lock file (``None`` if unreadable)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on POSIX; always ``True`` elsewhere)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

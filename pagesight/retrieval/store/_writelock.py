"""One writing process per embedded store: a lock file in the store's folder, through ``filelock``.

Chroma's embedded mode (``PersistentClient``) is not safe for several processes writing one folder:
each keeps its own HNSW index in memory and flushes it over the other's. :class:`WriteLock` lets one
process at a time write: the first write of a :class:`~pagesight.retrieval.store.PageStore` takes an
exclusive :class:`filelock.FileLock` on ``<store>/pagesight.lock`` and keeps it until the store is
closed; the holder's pid goes into ``<store>/pagesight.lock.pid`` for the message others get.
Threads and store objects of the same process share it (a process-wide count per folder).

``FileLock`` is ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on Windows: both are released by the
operating system when the holder dies (SIGKILL included), so a crash never leaves the store locked.
(The lock file itself stays; only the lock on it goes.)

Readers do not take the lock; the repair a store runs when it is opened takes it only if it is free
(a writer in another process does its own repairs). :class:`FileLockHold` is the same lock for any
file: the token store serializes its writers with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from pagesight.errors import StoreError

__all__ = ["LOCK_NAME", "FileLockHold", "WriteLock", "pid_alive"]

logger = logging.getLogger(__name__)

LOCK_NAME = "pagesight.lock"
PID_SUFFIX = ".pid"
_POLL_S = 0.05


class FileLockHold:
    """An exclusive inter-process lock on one file, with the holder's pid in a side file.

    Not re-entrant and not shared between threads: callers count their own holds.

    Args:
        path: the lock file (its folder is created if missing).
        what: how error messages name what the lock protects (``"store index/"``).
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._what = what
        self._lock: Any = None  # the filelock.FileLock while held

    @property
    def pid_path(self) -> Path:
        """The side file holding the pid of the process that holds the lock."""
        return self.path.with_name(self.path.name + PID_SUFFIX)

    @property
    def held(self) -> bool:
        return self._lock is not None

    def try_take(self) -> bool:
        """Take the lock if it is free right now; return whether it was taken.

        Raises:
            StoreError: the lock file cannot be used (a folder in its place, no permission).
        """
        if self._lock is not None:
            return True
        from filelock import FileLock, Timeout

        self._check_path()
        lock = FileLock(str(self.path), thread_local=False)
        try:
            lock.acquire(timeout=0, poll_interval=_POLL_S)
        except Timeout:
            return False
        except OSError as e:
            raise self._unusable(e) from e
        self._lock = lock
        self._write_pid()
        return True

    def take(self, timeout: float, hint: str) -> None:
        """Take the lock, waiting at most ``timeout`` seconds.

        Raises:
            StoreError: another process holds it (names its pid, then ``hint``), or the lock file
                cannot be used.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while not self.try_take():
            if time.monotonic() >= deadline:
                raise StoreError(self.busy_message(hint))
            time.sleep(_POLL_S)

    def busy_message(self, hint: str) -> str:
        pid = self.holder_pid()
        return f"{self._what} is being written by another process (pid {pid or 'unknown'}); {hint}"

    def release(self) -> None:
        """Give the lock back (a no-op when not held)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            with contextlib.suppress(OSError):
                lock.release(force=True)

    def holder_pid(self) -> int | None:
        """The pid the holder wrote beside the lock file (``None`` if unreadable)."""
        try:
            text = self.pid_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return int(text) if text.isdigit() else None

    def _check_path(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            odd = self.path.is_symlink() or (self.path.exists() and not self.path.is_file())
        except OSError as e:
            raise self._unusable(e) from e
        if odd:
            raise StoreError(
                f"{self._what}: its lock file {self.path} is not a regular file (a folder or a link "
                "is in its place). Remove it (nothing in it is needed) and try again."
            )

    def _unusable(self, e: OSError) -> StoreError:
        return StoreError(
            f"{self._what}: cannot use its lock file {self.path} ({type(e).__name__}: {e}). Make the "
            "folder writable, or remove the file if it is not a regular file, and try again."
        )

    def _write_pid(self) -> None:
        tmp = self.pid_path.with_name(f".{self.pid_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(str(os.getpid()), encoding="ascii")
            os.replace(tmp, self.pid_path)
        except OSError as e:  # only the message others get is poorer
            logger.debug("could not write %s: %s", self.pid_path, e)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


_registry_lock = threading.Lock()
_held: dict[str, tuple[int, FileLockHold, int]] = {}  # folder -> (pid, lock, holders)


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
            StoreError: another process holds it (names that process's pid), or the lock file
                cannot be used.
        """
        if not self._take(blocking_for=max(0.0, timeout)):
            raise StoreError(
                self._hold().busy_message(
                    "wait for it to finish, or use a Chroma server (`chroma run`, then "
                    "--store http://HOST:PORT or PageStore(url=...)) for several writing processes"
                )
            )

    def try_acquire(self) -> bool:
        """Take the lock if it is free right now; return whether it was taken."""
        return self._take(blocking_for=None)

    def release(self) -> None:
        """Give back one hold; the lock is released with the last."""
        with _registry_lock:
            entry = _held.get(self._key)
            if entry is None or entry[0] != os.getpid():
                return
            pid, hold, count = entry
            if count > 1:
                _held[self._key] = (pid, hold, count - 1)
                return
            del _held[self._key]
        hold.release()

    def holder_pid(self) -> int | None:
        """The pid the holder wrote beside the lock file (``None`` if unreadable)."""
        return self._hold().holder_pid()

    # -- internals -------------------------------------------------------------------------------

    def _hold(self) -> FileLockHold:
        return FileLockHold(self.path, f"store {self._location}")

    def _take(self, blocking_for: float | None) -> bool:
        deadline = None if blocking_for is None else time.monotonic() + blocking_for
        while True:
            with _registry_lock:
                entry = _held.get(self._key)
                if entry is not None and entry[0] == os.getpid():  # this process holds it: one more hold
                    _held[self._key] = (entry[0], entry[1], entry[2] + 1)
                    return True
                hold = self._hold()
                if hold.try_take():
                    _held[self._key] = (os.getpid(), hold, 1)
                    return True
            if deadline is None or time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


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

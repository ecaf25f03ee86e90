"""Old home of the inter-process write lock; it lives in :mod:`pagesight.retrieval.store._writelock`."""

from pagesight.retrieval.store._writelock import LOCK_NAME, FileLockHold, WriteLock, pid_alive

__all__ = ["LOCK_NAME", "FileLockHold", "WriteLock", "pid_alive"]

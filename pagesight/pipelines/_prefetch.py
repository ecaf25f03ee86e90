"""Run an iterator in a background thread, a bounded number of items ahead of its consumer.

Ingest uses it to render the next pages (CPU) while the current batch is being embedded (GPU or
CPU), so loading and encoding overlap instead of taking turns.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while a worker thread stays up to ``depth`` items ahead.

    An exception raised by ``items`` is re-raised in the consumer at the position it happened.
    Closing the returned generator early stops the worker at its next item.

    Args:
        items: any iterable (a page loader).
        depth: how many items may wait in the queue (at least 1).
    """
    q: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_Failure(e))
            return
        put(_DONE)

    worker = threading.Thread(target=work, name="pagesight-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            obj = q.get()
            if obj is _DONE:
                return
            if isinstance(obj, _Failure):
                raise obj.error
            yield obj  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
        close = getattr(items, "close", None)
        if callable(close):
            close()

from __future__ import annotations

import threading

import pytest

from pagesight.pipelines._prefetch import prefetch


def test_order_and_completeness():
    assert list(prefetch(iter(range(1000)), 3)) == list(range(1000))
    assert list(prefetch([], 1)) == []


def test_worker_runs_ahead_while_consumer_works():
    resumed = threading.Semaphore(0)

    def source():
        for i in range(5):
            yield i
            resumed.release()  # a plain generator gets here only when the consumer asks for more

    for _ in prefetch(source(), 4):
        # while the consumer still holds the item, the worker has moved on to the next one
        assert resumed.acquire(timeout=5)


def test_error_surfaces_at_its_position():
    def source():
        yield 1
        yield 2
        raise ValueError("page 3 is broken")

    got = []
    with pytest.raises(ValueError, match="page 3"):
        for x in prefetch(source(), 8):
            got.append(x)
    assert got == [1, 2]


def test_early_close_stops_the_worker_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    gen = prefetch(source(), 2)
    assert next(gen) == 0
    gen.close()
    assert closed.wait(2)
    assert not any(t.name == "pagesight-prefetch" for t in threading.enumerate())

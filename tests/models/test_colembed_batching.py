"""run_batched: batches in order, halving on CUDA out-of-memory (the real torch exception class)."""

from __future__ import annotations

import pytest
import torch

from pagesight.models._colembed_batching import EncoderOutOfMemoryError, is_out_of_memory, run_batched


class FitsUpTo:
    """A batch function that runs out of CUDA memory above ``limit`` items, like a too-big GPU batch."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sizes: list[int] = []

    def __call__(self, batch: list[int]) -> list[int]:
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in batch]


def test_plain_batches_in_order() -> None:
    fn = FitsUpTo(100)
    assert run_batched(fn, list(range(10)), 4) == [x * 10 for x in range(10)]
    assert fn.sizes == [4, 4, 2]


def test_halves_on_oom_keeps_the_smaller_size_and_loses_nothing() -> None:
    fn = FitsUpTo(3)
    resized: list[int] = []
    out = run_batched(fn, list(range(20)), 16, on_resize=resized.append)
    assert out == [x * 10 for x in range(20)]
    assert resized == [8, 4, 2]
    assert fn.sizes == [16, 8, 4, 2] + [2] * 9  # the failed batches, then 2 at a time to the end


def test_custom_policy() -> None:
    fn = FitsUpTo(5)
    out = run_batched(fn, list(range(12)), 12, on_oom=lambda size: size - 7)
    assert out == [x * 10 for x in range(12)] and fn.sizes[:2] == [12, 5]


def test_gives_up_with_a_clear_error_at_one_item() -> None:
    fn = FitsUpTo(0)
    with pytest.raises(EncoderOutOfMemoryError, match="1 item\\(s\\) per batch.*device='cpu'"):
        run_batched(fn, [1, 2, 3], 4)
    assert fn.sizes == [3, 2, 1]  # 4 asked, only 3 items; then halved down to 1
    assert issubclass(EncoderOutOfMemoryError, MemoryError)


def test_other_errors_pass_through_untouched() -> None:
    def broken(batch: list[int]) -> list[int]:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_batched(broken, [1, 2], 2)


def test_result_count_is_checked() -> None:
    with pytest.raises(ValueError, match="returned 1 results for 2 inputs"):
        run_batched(lambda batch: batch[:1], [1, 2], 2)


def test_recognizes_oom_errors() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert run_batched(lambda b: b, [], 3) == []
    with pytest.raises(ValueError):
        run_batched(lambda b: b, [1], 0)

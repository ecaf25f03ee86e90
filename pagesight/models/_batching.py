"""Run a model over items in batches, halving the batch on CUDA out-of-memory.

A large PDF must never crash the embedder because one batch of page images did not fit the GPU:
:func:`run_batched` retries the failing batch at half the size (down to 1) and keeps the smaller
size for the rest of the call. Torch is imported only to recognize its OOM exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from pagesight.errors import EncoderOutOfMemoryError

__all__ = ["EncoderOutOfMemoryError", "halve", "is_out_of_memory", "run_batched"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def halve(batch_size: int) -> int:
    """The default OOM policy: half the batch size, rounded down (1 -> 0 means give up)."""
    return batch_size // 2


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a CUDA out-of-memory error (``torch.cuda.OutOfMemoryError`` or its message)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is installed wherever a model runs
        return False
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _free_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort only
        pass


def run_batched(
    fn: Callable[[list[T]], Sequence[R]],
    items: Sequence[T],
    batch_size: int,
    *,
    on_oom: Callable[[int], int] = halve,
    on_resize: Callable[[int], None] | None = None,
    progress: bool = False,
    desc: str = "Embedding",
) -> list[R]:
    """Apply ``fn`` to consecutive batches of ``items`` and concatenate its results, in order.

    On a CUDA out-of-memory error the same batch is retried at ``on_oom(batch_size)`` items
    (halving by default), and that size is kept for the remaining batches.

    Args:
        fn: takes a list of items, returns one result per item.
        items: the inputs.
        batch_size: items per call to start with (>= 1).
        on_oom: new batch size after an OOM at the given size; a result below 1 gives up.
        on_resize: called with the new batch size after each reduction (an encoder remembers it).
        progress: show a tqdm progress bar over items.
        desc: the progress bar's label.

    Raises:
        EncoderOutOfMemoryError: out of memory with a single item per batch.
        ValueError: ``fn`` returned a different number of results than items it was given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    results: list[R] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), desc=desc)
    start = 0
    size = batch_size
    try:
        while start < len(items):
            batch = list(items[start : start + size])
            try:
                out = fn(batch)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                new_size = on_oom(size)
                del e
                _free_cuda_cache()
                if new_size < 1 or new_size >= size:
                    raise EncoderOutOfMemoryError(
                        f"the GPU ran out of memory with {size} item(s) per batch and cannot go lower; "
                        "free GPU memory (other processes, a smaller model or dtype='bfloat16'), render "
                        "pages at a lower dpi, or use device='cpu'"
                    ) from None
                logger.warning("CUDA out of memory at batch size %d; retrying with %d", size, new_size)
                size = new_size
                if on_resize is not None:
                    on_resize(size)
                continue
            out = list(out)
            if len(out) != len(batch):
                raise ValueError(f"batch function returned {len(out)} results for {len(batch)} inputs")
            results.extend(out)
            start += len(batch)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return results

"""Exact late-interaction scoring (MaxSim) over variable-length token matrices, without padding.

A late-interaction model (ColBERT, ColPali, NVIDIA ColEmbed) gives one vector per token. A page's score
for a query is MaxSim (ColBERT's late interaction, Chamfer similarity)::

    score(Q, D) = sum over query tokens q of  max over page tokens t of  q . t

Pages have different token counts. The usual way (colpali-engine's ``score_multi_vector``, NVIDIA's
``get_scores``) pads every page to the longest one and runs one big einsum: padded rows cost work and
memory, and the whole padded tensor streams through the cache at once. Here the pages are packed end
to end (:class:`PackedTokens`), scored in cache-sized blocks of whole pages (one matrix product per
block, float32 accumulation), and each page's maximum is a segmented max over its own columns.

Use::

    from pagesight.retrieval.maxsim import maxsim, maxsim_batch, pack

    docs = pack(page_matrices, dtype="float16")     # list of (n_i, d) arrays -> one packed array
    scores = maxsim(query_matrix, docs)             # (q, d) -> (len(docs),) float32
    many = maxsim_batch([q1, q2, q3], docs)         # (3, len(docs)) float32, one product per block
    resident = to_device(docs, "cuda")              # optional: keep pages on the GPU between calls
    scores = maxsim(query_matrix, resident)         # scored on the GPU in float16

Conventions: a page without tokens scores 0 for every query; a query without tokens scores 0 for every
page. Storage may be float32, float16 or int8 (symmetric per-token scales); the query is always used
in float32 on CPU.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pagesight._checks import check_choice, check_int
from pagesight.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

__all__ = [
    "PackedTokens",
    "DeviceTokens",
    "pack",
    "to_device",
    "quantize_int8",
    "dequantize_int8",
    "maxsim",
    "maxsim_batch",
    "maxsim_reference",
    "maxsim_padded",
]

logger = logging.getLogger(__name__)

StorageDtype = Literal["float32", "float16", "int8"]
_STORAGE_DTYPES: tuple[str, ...] = ("float32", "float16", "int8")
_CPU_BLOCK_TOKENS_ONE_THREAD = 8192
_CPU_BLOCK_TOKENS_THREADED = 65536
"""Default page tokens per product on the CPU, measured on a 2-core AMD EPYC (Zen 4), 128-dim tokens, 32
query tokens. With one BLAS thread, 4k-8k rows (block, its float32 copy and the (Q, B) similarities in
L2) ran fastest; 64k rows lost 20-50%. With several threads every product is a fork-join of the threads,
and when other processes share the cores a descheduled thread stalls each join: 64k-row blocks were
2-8x faster than 4k-16k there (in a quieter run, float32 at 64k rows was within ~10% of the best;
float16 at 64k was not measured on idle cores)."""
_CPU_MAX_SIMS = 2**21
"""On the CPU, blocks shrink so that (query tokens x block tokens) stays under this (8 MiB of float32)."""
_GPU_MAX_SIMS = 2**25
"""On a GPU, blocks grow to (query tokens x block tokens) = 2**25 similarities (128 MiB of float32):
few, large kernels instead of many launches."""


@dataclass(frozen=True, eq=False)
class PackedTokens:
    """Variable-length token matrices packed end to end (no padding).

    Build one with :func:`pack`. Page ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``; a page may have
    no tokens (``offsets[i] == offsets[i + 1]``).

    Attributes:
        tokens: ``(N, d)`` float32, float16 or int8; ``N`` is the total token count.
        offsets: ``(n_docs + 1,)`` int64, starting at 0, non-decreasing, ending at ``N``.
        scales: ``(N,)`` float32 per-token scales when ``tokens`` is int8 (value = int8 * scale),
            else ``None``.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    scales: np.ndarray | None = None

    def __post_init__(self) -> None:
        tokens, offsets, scales = self.tokens, self.offsets, self.scales
        if tokens.ndim != 2:
            raise ValueError(f"`tokens` must be 2-D (N, d), got shape {tokens.shape}")
        if tokens.dtype.name not in _STORAGE_DTYPES:
            raise ValueError(f"`tokens` dtype must be one of {_STORAGE_DTYPES}, got {tokens.dtype}")
        if offsets.ndim != 1 or offsets.dtype != np.int64 or offsets.size == 0:
            raise ValueError(
                f"`offsets` must be a non-empty 1-D int64 array, got {offsets.dtype} {offsets.shape}"
            )
        if offsets[0] != 0 or offsets[-1] != tokens.shape[0] or np.any(np.diff(offsets) < 0):
            raise ValueError(
                f"`offsets` must start at 0, never decrease and end at the token count {tokens.shape[0]}"
            )
        if tokens.dtype == np.int8:
            if scales is None or scales.shape != (tokens.shape[0],) or scales.dtype != np.float32:
                raise ValueError("int8 `tokens` need float32 `scales` of shape (N,)")
        elif scales is not None:
            raise ValueError(f"`scales` apply to int8 tokens only, not {tokens.dtype}")

    def __len__(self) -> int:
        """Number of pages (documents)."""
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        """Token vector dimension ``d``."""
        return int(self.tokens.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """``(n_docs,)`` int64 token count of each page."""
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        """Return page ``i``'s tokens as float32 ``(n_i, d)``, dequantized when stored as int8."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"document index {i} out of range for {n} documents")
        i %= n
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        if self.scales is not None:
            return dequantize_int8(self.tokens[a:b], self.scales[a:b])
        return self.tokens[a:b].astype(np.float32)


@dataclass(frozen=True, eq=False)
class DeviceTokens:
    """Packed pages already moved to a torch device (build with :func:`to_device`).

    Keep one alive to score many queries against the same pages without copying them to the GPU on
    every call; :func:`maxsim` and :func:`maxsim_batch` accept it in place of :class:`PackedTokens`.

    Attributes:
        tokens: ``(N, d)`` torch tensor on ``device`` (float16, bfloat16 or float32; int8 with ``scales``).
        offsets: ``(n_docs + 1,)`` int64 numpy array, as in :class:`PackedTokens` (kept on the host).
        scales: ``(N,)`` float32 tensor on ``device`` for int8 tokens, else ``None``.
        compute_dtype: the torch dtype the matrix products run in.
        doc_index: ``(N,)`` int64 tensor on ``device``: the page each token belongs to.
    """

    tokens: torch.Tensor
    offsets: np.ndarray
    scales: torch.Tensor | None
    compute_dtype: torch.dtype
    doc_index: torch.Tensor

    def __len__(self) -> int:
        """Number of pages (documents)."""
        return int(self.offsets.shape[0] - 1)

    @property
    def dim(self) -> int:
        """Token vector dimension ``d``."""
        return int(self.tokens.shape[1])

    @property
    def device(self) -> str:
        """The torch device the tokens live on, e.g. ``"cuda:0"``."""
        return str(self.tokens.device)


def quantize_int8(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantize token vectors to int8 with one symmetric scale per token.

    ``scale = max |x| / 127`` per row and ``value = round(x / scale)``, so each element is off by at
    most ``scale / 2`` after :func:`dequantize_int8`. A zero row gets scale 0 and values 0.

    Args:
        tokens: ``(N, d)`` float array.

    Returns:
        ``(values, scales)``: ``(N, d)`` int8 and ``(N,)`` float32.
    """
    x = np.asarray(tokens, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"`tokens` must be 2-D (N, d), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("`tokens` hold NaN or infinity; cannot quantize")
    scales = (
        (np.abs(x).max(axis=1) / 127.0).astype(np.float32) if x.shape[1] else np.zeros(len(x), np.float32)
    )
    safe = np.where(scales > 0, scales, np.float32(1.0))
    values = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
    return values, scales


def dequantize_int8(values: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Undo :func:`quantize_int8`: ``(N, d)`` int8 and ``(N,)`` scales -> ``(N, d)`` float32."""
    return values.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None]


def pack(matrices: Sequence[np.ndarray], *, dtype: StorageDtype = "float32") -> PackedTokens:
    """Pack per-page token matrices end to end.

    Args:
        matrices: one ``(n_i, d)`` array per page, the same ``d`` for all; ``n_i`` may be 0.
        dtype: storage type; ``"int8"`` quantizes each token with :func:`quantize_int8`.

    Returns:
        :class:`PackedTokens` with ``N = sum(n_i)`` rows. ``pack([])`` has no pages and ``d = 0``.
    """
    check_choice("dtype", dtype, _STORAGE_DTYPES)
    arrays = [np.asarray(m) for m in matrices]
    for i, m in enumerate(arrays):
        if m.ndim != 2:
            raise ValueError(f"matrix {i} must be 2-D (n_tokens, d), got shape {m.shape}")
    dims = {m.shape[1] for m in arrays}
    if len(dims) > 1:
        raise ValueError(f"all matrices must have the same dimension d, got {sorted(dims)}")
    d = dims.pop() if dims else 0
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([m.shape[0] for m in arrays], out=offsets[1:])
    store = np.float32 if dtype == "int8" else np.dtype(dtype)
    tokens = np.empty((int(offsets[-1]), d), dtype=store)
    for m, a, b in zip(arrays, offsets[:-1], offsets[1:], strict=True):
        tokens[a:b] = m
    if dtype == "int8":
        values, scales = quantize_int8(tokens)
        return PackedTokens(values, offsets, scales)
    return PackedTokens(tokens, offsets)


def to_device(docs: PackedTokens, device: str = "cuda", *, dtype: str = "float16") -> DeviceTokens:
    """Move packed pages to a torch device once, for many :func:`maxsim` calls.

    Args:
        docs: the packed pages.
        device: a torch device string, ``"cuda"``, ``"cuda:1"`` or ``"cpu"``.
        dtype: ``"float16"`` or ``"bfloat16"`` (GPU) or ``"float32"``: the type the matrix products
            run in. Float pages are converted to it on the way; int8 pages stay int8 (a quarter of
            the float32 memory) and are converted block by block.

    Returns:
        :class:`DeviceTokens` on ``device``.

    Raises:
        ConfigurationError: ``device`` is CUDA and no CUDA device is available, or ``dtype`` is unknown.
    """
    torch = _torch()
    target = _torch_device(device)
    compute = _compute_dtype(dtype, target)
    lengths = torch.from_numpy(docs.lengths).to(target)
    doc_index = torch.repeat_interleave(torch.arange(len(docs), device=target), lengths)
    if docs.scales is not None:  # int8 stays int8 on the device; converted block by block
        tokens = torch.from_numpy(docs.tokens).to(target)
        scales = torch.from_numpy(docs.scales).to(target)
        return DeviceTokens(tokens, docs.offsets, scales, compute, doc_index)
    tokens = torch.from_numpy(docs.tokens).to(target, dtype=compute)
    return DeviceTokens(tokens, docs.offsets, None, compute, doc_index)


def maxsim(
    query: np.ndarray,
    docs: PackedTokens | DeviceTokens,
    *,
    device: str | None = None,
    block_tokens: int | None = None,
) -> np.ndarray:
    """Score every page against one query with MaxSim.

    Args:
        query: ``(q, d)`` query token matrix (any float dtype; used as float32, or in the GPU's compute
            dtype).
        docs: packed pages, or :class:`DeviceTokens` already on a device (then ``device`` may be left
            ``None``; if given it must match).
        device: ``None`` or ``"cpu"`` scores on the CPU (torch when installed, else numpy);
            ``"cuda"``/``"cuda:N"`` scores on that GPU in float16 (pages copied there for this call;
            use :func:`to_device` to keep them there).
        block_tokens: page tokens per matrix product; blocks hold whole pages, a page longer than
            this is its own block. ``None``: on the CPU 8192 with one torch thread, 65536 with more
            (fewer when many query tokens are stacked: at most 2**21 similarities a block); on a GPU
            2**25 similarities a block.

    Returns:
        ``(n_docs,)`` float32: ``sum_q max_t q . t`` per page; 0 for a page without tokens.

    Raises:
        ConfigurationError: ``device`` is unknown, or CUDA was asked and is not available.
        ValueError: shapes do not match.
    """
    return maxsim_batch([query], docs, device=device, block_tokens=block_tokens)[0]


def maxsim_batch(
    queries: Sequence[np.ndarray],
    docs: PackedTokens | DeviceTokens,
    *,
    device: str | None = None,
    block_tokens: int | None = None,
) -> np.ndarray:
    """Score every page against several queries; their tokens share one matrix product per block.

    Args:
        queries: ``(q_j, d)`` query token matrices; ``q_j`` may differ (and be 0).
        docs: as in :func:`maxsim`.
        device: as in :func:`maxsim`.
        block_tokens: as in :func:`maxsim`.

    Returns:
        ``(n_queries, n_docs)`` float32 MaxSim scores.
    """
    check_int("block_tokens", block_tokens, least=1, optional=True)
    n_docs = len(docs)
    qs = [np.asarray(q, dtype=np.float32) for q in queries]
    for j, q in enumerate(qs):
        if q.ndim != 2:
            raise ValueError(f"query {j} must be 2-D (q, d), got shape {q.shape}")
        if n_docs and q.shape[1] != docs.dim:
            raise ValueError(f"query {j} has dimension {q.shape[1]}, the pages have {docs.dim}")
    out = np.zeros((len(qs), n_docs), dtype=np.float32)
    q_counts = np.array([q.shape[0] for q in qs], dtype=np.int64)
    live_q = np.flatnonzero(q_counts)
    if live_q.size == 0 or n_docs == 0 or docs.offsets[-1] == 0:
        if isinstance(docs, PackedTokens):
            _check_device(device)  # still refuse a bad device, even with nothing to score
        return out
    stacked = np.concatenate([qs[j] for j in live_q], axis=0)
    q_starts = np.concatenate([[0], np.cumsum(q_counts[live_q])[:-1]]).astype(np.int64)

    n_sims = len(stacked)
    if isinstance(docs, DeviceTokens):
        if device is not None and _torch_device(device) != docs.tokens.device:
            raise ConfigurationError(f"`device` is {device!r} but the tokens live on {docs.device}")
        block = block_tokens or max(1, _GPU_MAX_SIMS // n_sims)
        scores = _scores_torch(stacked, q_starts, docs, block)
    elif _check_device(device) == "cpu":
        use_torch = _have_torch()
        threads = _torch().get_num_threads() if use_torch else 2
        base = _CPU_BLOCK_TOKENS_ONE_THREAD if threads == 1 else _CPU_BLOCK_TOKENS_THREADED
        block = block_tokens or max(1024, min(base, _CPU_MAX_SIMS // n_sims))
        scores = _scores_cpu(stacked, q_starts, docs, block, use_torch=use_torch)
    else:
        block = block_tokens or max(1, _GPU_MAX_SIMS // n_sims)
        scores = _scores_torch(stacked, q_starts, to_device(docs, str(device)), block)
    out[live_q] = scores
    return out


def maxsim_reference(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim in float64 with a plain loop: the definition, for tests.

    Args:
        query: ``(q, d)``.
        docs: ``(n_i, d)`` arrays.

    Returns:
        ``(len(docs),)`` float64; 0 for an empty page or an empty query.
    """
    q = np.asarray(query, dtype=np.float64)
    out = np.zeros(len(docs), dtype=np.float64)
    for i, doc in enumerate(docs):
        d = np.asarray(doc, dtype=np.float64)
        if len(q) and len(d):
            out[i] = (q @ d.T).max(axis=1).sum()
    return out


def maxsim_padded(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim the usual way: pad every page to the longest, one einsum, max, sum (a benchmark baseline).

    This is what colpali-engine's ``score_multi_vector`` and NVIDIA's ``get_scores`` do (torch
    ``pad_sequence`` then ``einsum("bnd,csd->bcns")``), with one fix: they pad with zero vectors, whose
    similarity 0 wins the max whenever all of a page's real similarities are negative; here padded
    positions are masked to -inf so the result is exact MaxSim. Uses torch when installed, else numpy.

    Args:
        query: ``(q, d)``.
        docs: ``(n_i, d)`` arrays.

    Returns:
        ``(len(docs),)`` float32; 0 for an empty page or an empty query.
    """
    q = np.asarray(query, dtype=np.float32)
    if len(docs) == 0 or len(q) == 0:
        return np.zeros(len(docs), dtype=np.float32)
    padded, lengths = _pad(docs, q.shape[1])
    return _padded_scores(q, padded, lengths)


def _pad(docs: Sequence[np.ndarray], d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, L, d)`` float32 zero-padded copy of the pages (L = longest, at least 1) and their lengths."""
    lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
    padded = np.zeros((len(docs), max(int(lengths.max(initial=0)), 1), d), dtype=np.float32)
    for i, doc in enumerate(docs):
        padded[i, : len(doc)] = doc
    return padded, lengths


def _padded_scores(q: np.ndarray, padded: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The einsum / mask / max / sum part of :func:`maxsim_padded` on an already padded tensor."""
    pad_mask = np.arange(padded.shape[1])[None, :] >= lengths[:, None]  # (n, L)
    if _have_torch():
        torch = _torch()
        t_sims = torch.einsum("qd,nld->nql", torch.from_numpy(q), torch.from_numpy(padded))
        t_sims.masked_fill_(torch.from_numpy(pad_mask)[:, None, :], float("-inf"))
        best = t_sims.amax(dim=2).numpy()
    else:
        sims = np.einsum("qd,nld->nql", q, padded, optimize=True)
        sims[np.broadcast_to(pad_mask[:, None, :], sims.shape)] = -np.inf
        best = sims.max(axis=2)
    best[lengths == 0] = 0.0
    return best.sum(axis=1).astype(np.float32)


# --- internals -------------------------------------------------------------------------------------


def _torch() -> Any:
    import torch

    return torch


def _have_torch() -> bool:
    try:
        _torch()
    except ImportError:
        return False
    return True


def _check_device(device: str | None) -> str:
    """Return ``"cpu"`` or the CUDA device string; refuse anything else."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str) or not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigurationError(f"`device` must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        torch = _torch()
    except ImportError as e:
        raise ConfigurationError(
            f"`device` is {device!r} but torch is not installed; "
            'install it with: pip install "pagesight[gpu]"'
        ) from e
    if not torch.cuda.is_available():
        raise ConfigurationError(
            f"`device` is {device!r} but CUDA is not available (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}); use device=None to score on the CPU"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ConfigurationError(
            f"`device` is {device!r} but only {torch.cuda.device_count()} CUDA device(s) are visible"
        )
    return device


def _torch_device(device: str) -> torch.device:
    torch = _torch()
    dev = torch.device(_check_device(device))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _compute_dtype(name: str, device: torch.device) -> torch.dtype:
    torch = _torch()
    allowed = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    check_choice("dtype", name, sorted(allowed))
    if device.type == "cpu" and name != "float32":
        raise ConfigurationError(f"`dtype` {name!r} is for GPUs; on the CPU products run in float32")
    return allowed[name]


def _blocks(offsets: np.ndarray, block_tokens: int) -> Iterator[tuple[int, int]]:
    """Yield ``(first_doc, end_doc)`` runs of whole pages holding at most ``block_tokens`` tokens.

    A page longer than ``block_tokens`` forms a block alone; empty pages ride along with their neighbours.
    """
    n_docs = offsets.shape[0] - 1
    i = 0
    while i < n_docs:
        # largest j with offsets[j] - offsets[i] <= block_tokens, and at least one page
        j = int(np.searchsorted(offsets, offsets[i] + block_tokens, side="right")) - 1
        j = min(max(j, i + 1), n_docs)
        yield i, j
        i = j


def _block_layout(offsets: np.ndarray, i: int, j: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Token range ``[a, b)`` of pages ``i..j-1``, which of them have tokens, and their local starts."""
    a, b = int(offsets[i]), int(offsets[j])
    local = offsets[i:j] - a
    live = np.flatnonzero(np.diff(offsets[i : j + 1]))
    return a, b, live, local[live]


def _scores_cpu(
    queries: np.ndarray, q_starts: np.ndarray, docs: PackedTokens, block_tokens: int, *, use_torch: bool
) -> np.ndarray:
    """CPU scores: ``(n_queries, n_docs)`` float32. ``queries`` is ``(Q, d)`` float32, ``q_starts`` where
    each query's tokens begin in it.

    Per block of whole pages: float16/int8 rows are converted into a reused float32 buffer, ``sims =
    queries @ block.T`` is written into a reused ``(Q, B)`` buffer (torch's product when ``use_torch``:
    torch also converts float16 several times faster than numpy), int8 columns are multiplied by their
    token scales, then ``np.maximum.reduceat`` over each page's columns and ``np.add.reduceat`` over each
    query's rows. Reusing the buffers matters: a fresh multi-megabyte array per block is fresh pages
    for the kernel to fault in.
    """
    n_q, d = queries.shape
    out = np.zeros((len(q_starts), len(docs)), dtype=np.float32)
    blocks = list(_blocks(docs.offsets, block_tokens))
    widest = max(int(docs.offsets[j] - docs.offsets[i]) for i, j in blocks)
    sims_buf = np.empty(n_q * widest, dtype=np.float32)
    convert = docs.tokens.dtype != np.float32
    rows_buf = np.empty(widest * d if convert else 0, dtype=np.float32)
    if use_torch:
        return _scores_cpu_torch(queries, q_starts, docs, blocks, sims_buf, rows_buf, out)
    for i, j in blocks:
        a, b, live, starts = _block_layout(docs.offsets, i, j)
        n = b - a
        if n == 0:
            continue
        sims = sims_buf[: n_q * n].reshape(n_q, n)
        rows = docs.tokens[a:b]
        if convert:
            rows = rows_buf[: n * d].reshape(n, d)
            np.copyto(rows, docs.tokens[a:b], casting="unsafe")
        np.matmul(queries, rows.T, out=sims)
        if docs.scales is not None:
            sims *= docs.scales[a:b]
        best = np.maximum.reduceat(sims, starts, axis=1)  # (Q, live pages)
        out[:, i + live] = best.sum(axis=0) if len(q_starts) == 1 else np.add.reduceat(best, q_starts, axis=0)
    return out


def _scores_cpu_torch(
    queries: np.ndarray,
    q_starts: np.ndarray,
    docs: PackedTokens,
    blocks: list[tuple[int, int]],
    sims_buf: np.ndarray,
    rows_buf: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """The torch CPU kernel of :func:`_scores_cpu`.

    Token-major layout: ``sims = block @ queries.T`` is ``(tokens, Q)``, so each page's rows are
    contiguous, and the per-page max is one multi-threaded ``scatter_reduce_("amax")`` keyed by the
    token's page (measured 1.4x faster here than numpy's single-threaded ``reduceat`` over the
    query-major layout).
    """
    torch = _torch()
    n_q, d = queries.shape
    convert = docs.tokens.dtype != np.float32
    q_t, tokens_t = torch.from_numpy(queries), torch.from_numpy(docs.tokens)
    sims_t, rows_t = torch.from_numpy(sims_buf), torch.from_numpy(rows_buf)
    lengths = np.diff(docs.offsets)
    page_of_token = torch.from_numpy(np.repeat(np.arange(len(docs), dtype=np.int64), lengths))
    scales = torch.from_numpy(docs.scales) if docs.scales is not None else None
    widest_pages = max(j - i for i, j in blocks)
    best_t = torch.empty((widest_pages, n_q), dtype=torch.float32)
    with torch.inference_mode():
        for i, j in blocks:
            a, b = int(docs.offsets[i]), int(docs.offsets[j])
            n = b - a
            if n == 0:
                continue
            block = tokens_t[a:b]
            if convert:
                block = rows_t[: n * d].view(n, d).copy_(block)
            sims = sims_t[: n * n_q].view(n, n_q)
            torch.matmul(block, q_t.T, out=sims)
            if scales is not None:
                sims.mul_(scales[a:b, None])
            best = best_t[: j - i]
            best.fill_(-torch.inf)
            index = (page_of_token[a:b] - i)[:, None].expand(n, n_q)
            best.scatter_reduce_(0, index, sims, "amax", include_self=True)
            live = np.flatnonzero(lengths[i:j])
            best_np = best.numpy()[live]  # (live pages, Q)
            out[:, i + live] = (
                best_np.sum(axis=1) if len(q_starts) == 1 else np.add.reduceat(best_np, q_starts, axis=1).T
            )
    return out


def _scores_torch(
    queries: np.ndarray, q_starts: np.ndarray, docs: DeviceTokens, block_tokens: int
) -> np.ndarray:
    """Scores with torch on ``docs``' device (the GPU path; it runs on the CPU too, which is how it is tested
    without a GPU). Returns ``(n_queries, n_docs)`` float32.

    Per block of whole pages: ``sims = block @ queries.T`` in the compute dtype (float16/bfloat16 on a GPU:
    cuBLAS multiplies in half precision and accumulates in float32), then float32 from there: int8 rows
    times their scales, a per-page max with ``scatter_reduce(amax)`` and a per-query sum with
    ``index_add``. Nothing is copied between host and device inside the loop.
    """
    torch = _torch()
    dev, compute = docs.tokens.device, docs.compute_dtype
    n_q = len(q_starts)
    q_t = torch.from_numpy(queries).to(dev, dtype=compute)  # (Q, d)
    q_lengths = np.diff(np.append(q_starts, len(queries)))
    q_of_col = torch.from_numpy(np.repeat(np.arange(n_q), q_lengths)).to(dev)  # (Q,) query of each row
    out = torch.zeros((len(docs), n_q), dtype=torch.float32, device=dev)
    with torch.inference_mode():
        for i, j in _blocks(docs.offsets, block_tokens):
            a, b = int(docs.offsets[i]), int(docs.offsets[j])
            if a == b:
                continue
            sims = (docs.tokens[a:b].to(compute) @ q_t.T).float()  # (B, Q)
            if docs.scales is not None:
                sims *= docs.scales[a:b, None]
            rows = (docs.doc_index[a:b] - i)[:, None].expand_as(sims)
            best = torch.full((j - i, sims.shape[1]), float("-inf"), device=dev)
            best.scatter_reduce_(0, rows, sims, reduce="amax")  # pages without tokens stay -inf
            out[i:j].index_add_(1, q_of_col, best)
        empty = torch.from_numpy(np.flatnonzero(np.diff(docs.offsets) == 0)).to(dev)
        out[empty] = 0.0
    return out.T.cpu().numpy().astype(np.float32, copy=False)

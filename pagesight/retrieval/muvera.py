"""MUVERA fixed-dimensional encodings: one vector per page whose dot product approximates MaxSim.

Dhulipala, Hadian, Jayaram, Lee, Mirrokni, "MUVERA: Multi-Vector Retrieval via Fixed Dimensional
Encodings" (NeurIPS 2024, arXiv:2405.19504). For each of ``r_reps`` repetitions:

1. ``k_sim`` random Gaussian hyperplanes (SimHash) split the token space into ``B = 2**k_sim`` buckets;
   a token's bucket is the pattern of signs of its dot products with the hyperplanes.
2. Each token is projected to ``dim_proj`` dimensions by a random +-1 matrix scaled by
   ``1/sqrt(dim_proj)`` (an AMS sketch; skipped when ``dim_proj == dim``).
3. A page's block for bucket ``b`` is the *mean* of its projected tokens in ``b``; an empty bucket takes
   the projected token whose sign pattern is nearest in Hamming distance ("fill empty partitions").
   A query's block is the *sum* of its projected tokens in ``b``, empty buckets stay 0.

The encoding concatenates the ``r_reps * B`` blocks (``fde_dim = r_reps * 2**k_sim * dim_proj``). A query
token lands in one bucket per repetition and meets there the centroid of the page tokens that share its
hash, i.e. tokens likely close to it, so ``<query FDE, page FDE>`` averages (over repetitions) a sum over
query tokens of the similarity to a near page token: an estimate of MaxSim (Chamfer similarity) good
enough to pick candidates for exact MaxSim (:mod:`pagesight.retrieval.maxsim`).

Use::

    from pagesight.retrieval.muvera import Muvera

    fde = Muvera(dim=128)                          # defaults: k_sim=4, dim_proj=16, r_reps=10 -> 2560 dims
    pages = fde.encode_documents(page_matrices)    # (n_pages, 2560) float32
    query = fde.encode_query(query_matrix)         # (2560,) float32
    approx = pages @ query                         # ~ MaxSim; rerank the best with exact MaxSim
    Muvera.from_config(fde.config())               # the same random draws, e.g. after reopening a store

The random draws come from ``numpy.random.default_rng(seed)`` (PCG64), so the same config gives the same
encoding on every machine; ``config()["version"]`` names this algorithm so a later change can be refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pagesight.errors import ConfigurationError

__all__ = ["Muvera"]

_VERSION = 1
_MAX_K_SIM = 12
_CHUNK_TOKENS = 65536


class Muvera:
    """MUVERA fixed-dimensional encodings (Dhulipala et al., 2024): multi-vector -> one vector whose dot
    product approximates MaxSim (Chamfer similarity).

    Args:
        dim: token vector dimension ``d`` of the model (128 for ColBERT/ColPali, 3072 or 2048 for ColEmbed).
        k_sim: SimHash hyperplanes per repetition; ``2**k_sim`` buckets (1 ... 12).
        dim_proj: dimensions each bucket's vector is projected to.
        r_reps: independent repetitions, concatenated.
        seed: seed of the random hyperplanes and projections.
    """

    def __init__(
        self, dim: int, *, k_sim: int = 4, dim_proj: int = 16, r_reps: int = 10, seed: int = 0
    ) -> None:
        for name, value, low in (
            ("dim", dim, 1),
            ("k_sim", k_sim, 1),
            ("dim_proj", dim_proj, 1),
            ("r_reps", r_reps, 1),
        ):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ConfigurationError(f"`{name}` must be an integer >= {low}, got {value!r}")
        if k_sim > _MAX_K_SIM:
            raise ConfigurationError(
                f"`k_sim` must be at most {_MAX_K_SIM} ({2**_MAX_K_SIM} buckets), got {k_sim}"
            )
        if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
            raise ConfigurationError(f"`seed` must be a non-negative integer, got {seed!r}")
        self.dim, self.k_sim, self.dim_proj, self.r_reps, self.seed = (
            int(dim),
            int(k_sim),
            int(dim_proj),
            int(r_reps),
            int(seed),
        )
        rng = np.random.default_rng(self.seed)
        # (r, d, k) hyperplanes and (r, d, dim_proj) projections; a few hundred KB for d = 3072
        self._planes = rng.standard_normal((self.r_reps, self.dim, self.k_sim)).astype(np.float32)
        if self.dim_proj == self.dim:
            self._proj: np.ndarray | None = None
        else:
            signs = rng.integers(0, 2, size=(self.r_reps, self.dim, self.dim_proj)) * 2 - 1
            self._proj = (signs / np.sqrt(self.dim_proj)).astype(np.float32)
        buckets = np.arange(2**self.k_sim)
        self._hamming = np.array(
            [[bin(a ^ b).count("1") for b in buckets] for a in buckets], dtype=np.int64
        )  # (B, B) Hamming distance between bucket sign patterns
        self._bit_weights = (1 << np.arange(self.k_sim)).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"Muvera(dim={self.dim}, k_sim={self.k_sim}, dim_proj={self.dim_proj}, "
            f"r_reps={self.r_reps}, seed={self.seed})"
        )

    @property
    def n_buckets(self) -> int:
        """Buckets per repetition, ``2**k_sim``."""
        return 2**self.k_sim

    @property
    def fde_dim(self) -> int:
        """Length of an encoding: ``r_reps * 2**k_sim * dim_proj``."""
        return self.r_reps * self.n_buckets * self.dim_proj

    def config(self) -> dict[str, int]:
        """The parameters that fix the encoding, to record in store metadata (see :meth:`from_config`)."""
        return {
            "version": _VERSION,
            "dim": self.dim,
            "k_sim": self.k_sim,
            "dim_proj": self.dim_proj,
            "r_reps": self.r_reps,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, int]) -> Muvera:
        """Rebuild the encoder that :meth:`config` described.

        Raises:
            ConfigurationError: a key is missing or unknown, or the config is from another algorithm version.
        """
        keys = {"dim", "k_sim", "dim_proj", "r_reps", "seed"}
        given = set(config) - {"version"}
        if given != keys:
            raise ConfigurationError(
                f"MUVERA config needs exactly the keys {sorted(keys)} (and 'version'), got {sorted(config)}"
            )
        version = int(config.get("version", _VERSION))
        if version != _VERSION:
            raise ConfigurationError(
                f"MUVERA config has version {version}; this pagesight encodes version {_VERSION}. "
                "Re-index the pages to rebuild the encodings."
            )
        return cls(
            int(config["dim"]),
            k_sim=int(config["k_sim"]),
            dim_proj=int(config["dim_proj"]),
            r_reps=int(config["r_reps"]),
            seed=int(config["seed"]),
        )

    def encode_documents(self, matrices: Sequence[np.ndarray]) -> np.ndarray:
        """Encode pages (bucket means, empty buckets filled).

        Args:
            matrices: one ``(n_i, dim)`` token matrix per page; a page without tokens encodes to zeros.

        Returns:
            ``(len(matrices), fde_dim)`` float32.
        """
        chunks: list[np.ndarray] = []
        chunk: list[np.ndarray] = []
        n_tokens = 0
        for m in matrices:  # bound the (tokens x buckets) work arrays: whole pages, ~64k tokens a chunk
            if chunk and n_tokens + len(m) > _CHUNK_TOKENS:
                chunks.append(self._encode(chunk, is_query=False))
                chunk, n_tokens = [], 0
            chunk.append(m)
            n_tokens += len(m)
        chunks.append(self._encode(chunk, is_query=False))
        return np.concatenate(chunks, axis=0)

    def encode_query(self, matrix: np.ndarray) -> np.ndarray:
        """Encode one query (bucket sums, empty buckets 0).

        Args:
            matrix: ``(q, dim)`` query token matrix.

        Returns:
            ``(fde_dim,)`` float32.
        """
        return self._encode([matrix], is_query=True)[0]

    def _encode(self, matrices: Sequence[np.ndarray], *, is_query: bool) -> np.ndarray:
        arrays = [np.asarray(m, dtype=np.float32) for m in matrices]
        for i, m in enumerate(arrays):
            if m.ndim != 2 or m.shape[1] != self.dim:
                raise ValueError(f"matrix {i} must have shape (n_tokens, {self.dim}), got {m.shape}")
            if not np.all(np.isfinite(m)):
                raise ValueError(f"matrix {i} holds NaN or infinity")
        n_docs, n_b, dp = len(arrays), self.n_buckets, self.dim_proj
        out = np.zeros((n_docs, self.r_reps, n_b, dp), dtype=np.float32)
        lengths = np.array([len(m) for m in arrays], dtype=np.int64)
        if n_docs == 0 or lengths.sum() == 0:
            return out.reshape(n_docs, self.fde_dim)
        tokens = np.concatenate(arrays, axis=0)  # (N, d)
        n_tok = len(tokens)
        doc_of_token = np.repeat(np.arange(n_docs), lengths)
        live = np.flatnonzero(lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[live]
        for r in range(self.r_reps):
            bucket = ((tokens @ self._planes[r]) > 0).astype(np.int64) @ self._bit_weights  # (N,)
            projected = tokens if self._proj is None else tokens @ self._proj[r]  # (N, dp)
            keys = doc_of_token * n_b + bucket
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            sums = np.add.reduceat(projected[order], first, axis=0)  # (filled buckets, dp)
            flat = np.zeros((n_docs * n_b, dp), dtype=np.float32)
            present = sorted_keys[first]
            if is_query:
                flat[present] = sums
                out[:, r] = flat.reshape(n_docs, n_b, dp)
                continue
            counts = np.diff(np.r_[first, n_tok])
            flat[present] = sums / counts[:, None]
            out[:, r] = flat.reshape(n_docs, n_b, dp)
            # empty buckets of non-empty pages: the token with the nearest sign pattern (first on ties)
            is_filled = np.zeros(n_docs * n_b, dtype=bool)
            is_filled[present] = True
            filled = is_filled.reshape(n_docs, n_b)
            if filled[live].all():
                continue
            rank = self._hamming[bucket] * n_tok + np.arange(n_tok)[:, None]  # (N, B)
            nearest = np.minimum.reduceat(rank, starts, axis=0) % n_tok  # (live pages, B)
            empty_doc, empty_bucket = np.nonzero(~filled[live])
            out[live[empty_doc], r, empty_bucket] = projected[nearest[empty_doc, empty_bucket]]
        return out.reshape(n_docs, self.fde_dim)

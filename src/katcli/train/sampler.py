"""Which training items each step sees: one weighted, seeded, with-replacement sample stream.

Items are pairs (reward models, DPO), replies (SFT) or prompts (GRPO): anything that belongs to a prompt. Uniform and
density-aware training use the same sampler; only the per-item probabilities differ:

- `uniform`: every training pair has probability 1/N.
- `per-prompt` (density-aware default): a pair's probability is ∝ `w(prefix) / n_pairs(prefix)`, so the pairs of
  one prompt share its density weight and each prompt's total mass equals its (renormalised) weight. A prompt with
  many pairs is not sampled more often than a prompt with one.
- `per-pair`: a pair's probability is ∝ `w(prefix)`, so a prompt's mass also grows with its number of pairs.

The stream is a pure function of (seed, step): step `s` belongs to pool `s // pool_batches`; a pool draws
`pool_batches × batch_size` pairs from its own generator (`numpy.random.default_rng([seed, pool])`), optionally
sorts them by length so each batch holds similar lengths (length bucketing), cuts them into batches and shuffles
the batch order. Every drawn pair is used exactly once, so bucketing changes which pairs share a batch, never how
often a pair is drawn. Because nothing is carried between steps, resuming at step `s` and sharding one global
batch across ranks are both exact.

This module knows indices, probabilities and lengths; nothing about tokens, models or files.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from katcli.density.weights import effective_sample_size
from katcli.errors import KatError

__all__ = ["MODES", "WeightedSampler", "effective_sample_size", "item_probabilities", "shard"]

UNIFORM = "uniform"
PER_PROMPT = "per-prompt"
PER_PAIR = "per-pair"
MODES = (UNIFORM, PER_PROMPT, PER_PAIR)


def item_probabilities(
    prefix_ids: Sequence[str], weights: Mapping[str, float] | None = None, *, mode: str = UNIFORM, noun: str = "pairs"
) -> np.ndarray:
    """Sampling probabilities (float64, sum 1) for the training items whose prompts' prefix ids are given.

    When every item is its own prompt (GRPO samples prompts), `per-prompt` and `per-pair` coincide.
    """
    n = len(prefix_ids)
    if n == 0:
        raise KatError(f"there are no training {noun} to sample from")
    if mode == UNIFORM:
        return np.full(n, 1.0 / n, dtype=np.float64)
    if mode not in MODES:
        raise ValueError(f"unknown weighting mode {mode!r}")
    if weights is None:
        raise ValueError("density-aware sampling needs weights")
    missing = [pid for pid in prefix_ids if pid not in weights]
    if missing:
        prompts = set(prefix_ids)
        raise KatError(
            f"{len(missing)} of {n} training {noun} ({len(set(missing))} of {len(prompts)} prompts) have no density "
            f"weight (e.g. prefix {missing[0]}); the weights cover {len(weights)} prompts",
            hint="the density weights are out of step with the pairs: re-run `kat prefixes` and `kat embed`",
        )
    w = np.array([weights[pid] for pid in prefix_ids], dtype=np.float64)
    if mode == PER_PROMPT:
        counts = Counter(prefix_ids)
        w = w / np.array([counts[pid] for pid in prefix_ids], dtype=np.float64)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        raise KatError(
            "the training prompts' density weights sum to zero", hint="re-run `kat embed` (weights must be positive)"
        )
    return w / total


POOL_BATCHES = 32


def pool_bytes(batch_size: int, pool_batches: int = POOL_BATCHES) -> int:
    """Memory one pool of batches takes while it is drawn: uniforms, indices, lengths and their sort order."""
    return 32 * int(batch_size) * int(pool_batches)


class WeightedSampler:
    """Global batches of training-item indices, step by step, for any number of ranks."""

    def __init__(
        self,
        probs: np.ndarray,
        lengths: np.ndarray,
        *,
        seed: int,
        batch_size: int,
        pool_batches: int = POOL_BATCHES,
        bucketing: bool = True,
    ) -> None:
        if len(probs) != len(lengths):
            raise ValueError("probs and lengths differ in length")
        if batch_size < 1 or pool_batches < 1:
            raise ValueError("batch_size and pool_batches must be positive")
        self.probs = np.asarray(probs, dtype=np.float64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.pool_batches = int(pool_batches)
        self.bucketing = bool(bucketing)
        cdf = np.cumsum(self.probs)
        self._cdf = cdf / cdf[-1]
        self._pool_index = -1
        self._pool: list[np.ndarray] = []

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` indices drawn with replacement from the item distribution (inverse-CDF sampling)."""
        u = rng.random(size)
        idx = np.searchsorted(self._cdf, u, side="right")
        return np.minimum(idx, len(self._cdf) - 1)

    def _make_pool(self, pool: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, pool])
        drawn = self.draw(rng, self.pool_batches * self.batch_size)
        if self.bucketing:
            drawn = drawn[np.argsort(self.lengths[drawn], kind="stable")]
        batches = [drawn[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.pool_batches)]
        order = rng.permutation(self.pool_batches)
        return [batches[k] for k in order]

    def batch(self, step: int) -> np.ndarray:
        """The global batch (indices into the training items) for a 0-based step."""
        pool, k = divmod(int(step), self.pool_batches)
        if pool != self._pool_index:
            self._pool = self._make_pool(pool)
            self._pool_index = pool
        return self._pool[k]

    def fingerprint(self) -> str:
        """Identifies the stream: a resumed run must draw from the same distribution."""
        h = hashlib.sha256()
        h.update(self.probs.tobytes())
        h.update(self.lengths.tobytes())
        h.update(f"{self.seed}:{self.batch_size}:{self.pool_batches}:{self.bucketing}".encode())
        return h.hexdigest()

    def state(self, next_step: int) -> dict[str, Any]:
        """Everything needed to continue the stream at `next_step` (it is stateless beyond that)."""
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "pool_batches": self.pool_batches,
            "bucketing": self.bucketing,
            "next_step": int(next_step),
            "fingerprint": self.fingerprint(),
        }


def shard(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's share of a global batch: every `world_size`-th item, so ranks get similar lengths."""
    return batch[rank::world_size]

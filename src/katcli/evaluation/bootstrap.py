"""Bootstrap intervals over prompts, and paired differences on the same resamples.

Prompts are the unit of resampling: one seeded matrix of resampled prompt indices (`resamples`) serves every policy
and measure of a group, so the difference between two policies is a *paired* bootstrap (each resample compares them
on the same prompts), and a policy against itself gets a difference of exactly 0.

- A per-prompt measure (mean reward, distinct-2 of a prompt's samples, …) is summarised by its mean over prompts;
  `mean_interval` is the percentile interval of the resampled means.
- A set measure (Vendi score, distinct-n over one reply per prompt, …) is a function of the whole set of prompts;
  `set_interval` recomputes it on every resample, given as item counts (a resample is a multiset of prompts). A resample repeats some prompts, which makes any set look less
  diverse, so the resampled values sit below the full-set value θ̂. The interval is the percentile interval moved
  by the bootstrap estimate of that bias, `[q₂.₅ − b, q₉₇.₅ − b]` with `b = mean(draws) − θ̂` (Efron & Tibshirani
  1993, §10.2): the spread comes from the resamples, the centre from the full set.

Prompts whose value is undefined (None/NaN) are left out of a mean; a resample that draws only such prompts is
skipped. This module knows arrays and seeds, nothing about policies, models or files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
SET_RESAMPLES = 200  # a set measure costs an eigen-decomposition or n-gram count per resample


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its 95% interval and how many prompts it rests on (None when undefined)."""

    value: float | None
    lo: float | None
    hi: float | None
    n: int

    def to_json(self, digits: int = 6) -> dict:
        r = (lambda x: None if x is None else round(float(x), digits))
        return {"value": r(self.value), "ci95": [r(self.lo), r(self.hi)], "n": self.n}


NONE = Estimate(None, None, None, 0)


def stream_seed(seed: int, *parts: str) -> int:
    """A 63-bit seed determined by `seed` and labels (so each group gets its own, stable stream)."""
    digest = hashlib.sha256(":".join(["kat-bootstrap", str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def resamples(n: int, seed: int, *labels: str, b: int = DEFAULT_RESAMPLES) -> np.ndarray:
    """`(b, n)` prompt indices drawn with replacement, seeded by (seed, labels)."""
    rng = np.random.default_rng(stream_seed(seed, *labels))
    return rng.integers(0, n, size=(b, n)) if n else np.zeros((b, 0), dtype=np.int64)


def _as_array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _resampled_means(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    picked = x[idx]
    ok = ~np.isnan(picked)
    counts = ok.sum(axis=1)
    sums = np.where(ok, picked, 0.0).sum(axis=1)
    means = np.full(len(idx), np.nan)
    np.divide(sums, counts, out=means, where=counts > 0)
    return means[~np.isnan(means)]


def _percentiles(draws: np.ndarray) -> tuple[float | None, float | None]:
    if len(draws) == 0:
        return None, None
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def mean_interval(values: Sequence[float | None], idx: np.ndarray) -> Estimate:
    """Mean over prompts with a percentile interval over the resamples `idx`."""
    x = _as_array(values)
    ok = ~np.isnan(x)
    if not ok.any():
        return Estimate(None, None, None, 0)
    lo, hi = _percentiles(_resampled_means(x, idx))
    return Estimate(float(x[ok].mean()), lo, hi, int(ok.sum()))


def paired_mean_interval(values: Sequence[float | None], base: Sequence[float | None], idx: np.ndarray) -> Estimate:
    """Mean of the per-prompt difference `values − base` (prompts where both are defined), paired resamples."""
    d = _as_array(values) - _as_array(base)
    return mean_interval([None if np.isnan(v) else float(v) for v in d], idx)


def resample_counts(members: np.ndarray, idx: np.ndarray, size: int) -> np.ndarray:
    """`(b, size)`: how often each of `size` items appears in each resample of the group `members` (`idx` holds
    positions in `members`, as `resamples` draws them)."""
    out = np.zeros((len(idx), size), dtype=np.int64)
    for r, row in enumerate(idx):
        np.add.at(out[r], members[row], 1)
    return out


def set_draws(
    stat: Callable[[np.ndarray], float | None], full: np.ndarray, counts: np.ndarray
) -> tuple[float | None, np.ndarray]:
    """`stat(item counts)` on the whole group (`full`) and on every resample (rows of `counts`; NaN where
    undefined): the raw material of a set interval, kept so that two policies' draws can be subtracted resample by
    resample."""
    theta = stat(full) if full.sum() else None
    draws = np.array([np.nan if (v := stat(row)) is None else float(v) for row in counts], dtype=np.float64)
    return theta, draws


def set_estimate(theta: float | None, draws: np.ndarray, n: int) -> Estimate:
    """A set measure's interval from its draws: the percentile interval minus the bootstrap bias estimate."""
    if theta is None:
        return Estimate(None, None, None, n)
    ok = draws[~np.isnan(draws)]
    q_lo, q_hi = _percentiles(ok)
    if q_lo is None or q_hi is None:
        return Estimate(float(theta), None, None, n)
    bias = float(ok.mean()) - theta
    return Estimate(float(theta), q_lo - bias, q_hi - bias, n)


def set_interval(stat: Callable[[np.ndarray], float | None], full: np.ndarray, counts: np.ndarray) -> Estimate:
    """`stat` on the whole group with its bias-corrected bootstrap interval over the resampled `counts`."""
    return set_estimate(*set_draws(stat, full, counts), int(full.sum()))


def paired_set_interval(
    a: tuple[float | None, np.ndarray], b: tuple[float | None, np.ndarray], n: int
) -> Estimate:
    """The difference of two policies' set measures from their draws on the same resamples."""
    (ta, da), (tb, db) = a, b
    if ta is None or tb is None:
        return Estimate(None, None, None, n)
    return set_estimate(ta - tb, da - db, n)

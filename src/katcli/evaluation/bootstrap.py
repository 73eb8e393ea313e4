"""Bootstrap intervals over prompts for per-prompt measures, and paired differences on the same resamples.

Prompts are the unit of resampling: one seeded matrix of resampled prompt indices (`resamples`) serves every policy
and measure of a group, so the difference between two policies is a *paired* bootstrap (each resample compares them
on the same prompts), and a policy against itself gets a difference of exactly 0.

A per-prompt measure (mean reward, distinct-2 of a prompt's samples, …) is summarised by its mean over prompts;
`mean_interval` is the percentile interval of the resampled means (Efron & Tibshirani 1993, §13.3), which lies
inside the range of the per-prompt values because every resampled mean does. A paired Δ also carries the bootstrap
standard error (for its minimum detectable difference, `katcli.evaluation.power`) and a two-sided bootstrap
p-value `min(1, 2·(1 + #{Δ* on the far side of 0})/(B + 1))` (Davison & Hinkley 1997, eq. 4.11).

Set measures (a function of the whole set of prompts) are not resampled with repeats: see
`katcli.evaluation.jackknife`. Prompts whose value is undefined (None/NaN) are left out of a mean; a resample that
draws only such prompts is skipped. This module knows arrays and seeds, nothing about policies, models or files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its 95% interval and how many prompts it rests on (None when undefined); a comparison
    also carries its standard error (`se`, with `df`) and p-value, which `to_json` shows with the minimum detectable
    difference at 80% power (`mdd80`)."""

    value: float | None
    lo: float | None
    hi: float | None
    n: int
    se: float | None = None
    df: float = float("inf")
    p: float | None = None

    def with_p(self, p: float | None) -> Estimate:
        return replace(self, p=p)

    def to_json(self, digits: int = 6) -> dict:
        from katcli.evaluation.power import mdd

        r = (lambda x: None if x is None else round(float(x), digits))
        out = {"value": r(self.value), "ci95": [r(self.lo), r(self.hi)], "n": self.n}
        if self.p is not None:
            out["p"] = float(f"{self.p:.6g}")
            out["mdd80"] = r(mdd(self.se, self.df))
        return out


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
    draws = _resampled_means(x, idx)
    lo, hi = _percentiles(draws)
    se = float(draws.std(ddof=1)) if len(draws) > 1 else None
    return Estimate(float(x[ok].mean()), lo, hi, int(ok.sum()), se=se)


def bootstrap_p(draws: np.ndarray, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of `null` from the resampled estimates (1 when they all equal it)."""
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0 or np.all(draws == null):
        return 1.0
    far = min(int((draws <= null).sum()), int((draws >= null).sum()))
    return min(1.0, 2.0 * (1 + far) / (len(draws) + 1))


def paired_mean_interval(values: Sequence[float | None], base: Sequence[float | None], idx: np.ndarray) -> Estimate:
    """Mean of the per-prompt difference `values − base` (prompts where both are defined), paired resamples, with
    its bootstrap p-value of no difference."""
    d = _as_array(values) - _as_array(base)
    est = mean_interval([None if np.isnan(v) else float(v) for v in d], idx)
    if est.value is None:
        return est
    return est.with_p(bootstrap_p(_resampled_means(d, idx)))

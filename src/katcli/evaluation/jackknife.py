"""Intervals for set measures: the delete-a-group jackknife, on the scale of the measure's range.

A set measure (distinct-n over one reply per prompt, the Vendi score, embedding diversity across prompts) is a
function of the whole set of prompts, and resampling *with* replacement biases it: a bootstrap resample repeats
about a third of the prompts, and a repeated reply looks like a collapse, so the resampled values sit far below the
full-set value. Shifting the percentile interval by that bias (what kat did before) pushes it out of the measure's
range (distinct-2 up to 1.318). Deleting prompts never repeats one, so kat uses the jackknife instead:

- **Estimand.** θ_n, the measure's expected value on a set of n prompts drawn like the evaluated ones (a set
  measure depends on how many prompts it is computed over: distinct-n falls and Vendi rises with n, so the set
  size is part of what is estimated). The full-set value T_n is its point estimate.
- **Delete-a-group jackknife** (Shao & Tu 1995, *The Jackknife and Bootstrap*, §2.3 and §5.1.2; Efron &
  Tibshirani 1993, §11.7). The group's prompts are split at random (seeded by group label) into G = min(n, 50)
  blocks of near-equal size; θ_(g) is the measure without block g, and
  `v = (G − 1)/G · Σ_g (θ_(g) − θ_(·))²`. With G = n it is the ordinary jackknife, whose variance estimate is
  biased *upwards* for any symmetric statistic of independent draws (the Efron–Stein inequality: Efron & Stein
  1981, "The jackknife estimate of variance", *Ann. Statist.* 9:586–596), so the interval errs wide, not narrow.
  Unlike the delete-d/subsampling rescaling `√(b/n)` (Politis & Romano 1994), which assumes a √n rate that
  Vendi at n below the embedding rank does not have, the jackknife reads the spread from each block's influence,
  which holds for extensive and intensive statistics alike.
- **Interval.** `T_n ± t_{G−1}·√v` on the logit scale of the measure's range and mapped back
  (`katcli.evaluation.intervals.bounded_t_interval`): inside [0, 1] for distinct-n, [0, 2] for 1 − cosine, [1, n]
  for Vendi, by construction rather than by a clip.
- **Paired Δ.** Two policies on the same prompts use the same blocks, so `Δ_(g) = θᴬ_(g) − θᴮ_(g)` gives the
  paired variance; Δ's range is ±(hi − lo), and its p-value is the t test of Δ = 0 on the same scale.

Pure functions of item counts, like `katcli.evaluation.diversity`'s `*_from_counts` measures. Nothing about
policies, models or files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from katcli.evaluation.bootstrap import Estimate, stream_seed
from katcli.evaluation.intervals import bounded_t_interval, bounded_t_p

GROUPS = 50  # blocks deleted in turn: n recomputations at most; 50 keeps Vendi's eigen-decompositions cheap


def blocks(n: int, seed: int, *labels: str, groups: int = GROUPS) -> np.ndarray:
    """The block (0 … G − 1, G = min(n, groups)) of each of a group's n members, a seeded balanced partition."""
    g = max(1, min(n, groups))
    order = np.random.default_rng(stream_seed(seed, "jackknife", *labels)).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % g
    return out


@dataclass(frozen=True)
class SetDraws:
    """A set measure on the whole group (`theta`) and with each block deleted (`reps`, NaN where undefined)."""

    theta: float | None
    reps: np.ndarray

    def __sub__(self, other: SetDraws) -> SetDraws:
        if self.theta is None or other.theta is None:
            return SetDraws(None, np.full(len(self.reps), np.nan))
        return SetDraws(self.theta - other.theta, self.reps - other.reps)


def set_draws(
    stat: Callable[[np.ndarray], float | None], full: np.ndarray, members: np.ndarray, block: np.ndarray
) -> SetDraws:
    """`stat(item counts)` on the group (`full`: 1 on its `members`) and with each block of members deleted."""
    theta = stat(full) if full.sum() else None
    g = int(block.max()) + 1 if len(block) else 0
    reps = np.full(g, np.nan)
    for k in range(g if g > 1 else 0):
        counts = full.copy()
        counts[members[block == k]] = 0
        v = stat(counts)
        reps[k] = np.nan if v is None else float(v)
    return SetDraws(theta, reps)


def jackknife_se(reps: np.ndarray) -> tuple[float | None, int]:
    """(standard error, degrees of freedom G − 1) of the delete-a-group jackknife; None under two blocks."""
    ok = reps[~np.isnan(reps)]
    g = len(ok)
    if g < 2:
        return None, 0
    return float(np.sqrt((g - 1) / g * np.sum((ok - ok.mean()) ** 2))), g - 1


def set_estimate(d: SetDraws, n: int, lo: float, hi: float) -> Estimate:
    """A set measure with its jackknife interval inside `[lo, hi]` (no interval for a group of one prompt)."""
    if d.theta is None:
        return Estimate(None, None, None, n)
    se, df = jackknife_se(d.reps)
    if se is None:
        return Estimate(float(d.theta), None, None, n)
    a, b = bounded_t_interval(float(d.theta), se, df, lo, hi)
    return Estimate(float(d.theta), a, b, n, se=se, df=df)


def paired_set_estimate(a: SetDraws, b: SetDraws, n: int, lo: float, hi: float) -> Estimate:
    """Δ = a − b of one set measure on the same prompts and blocks, inside ±(hi − lo), with its t test of Δ = 0."""
    d = a - b
    span = hi - lo
    est = set_estimate(d, n, -span, span)
    if est.value is None or est.se is None:
        return est
    return est.with_p(bounded_t_p(est.value, est.se, est.df, 0.0, -span, span))

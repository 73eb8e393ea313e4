"""Across-seed estimates: one arm trained with several seeds and evaluated on the same held-out prompts.

The replicates of an arm form a crossed design, seeds × prompts: every seed is scored on every prompt. A figure's
uncertainty then has two sources, which seed was drawn and which prompts were drawn, and an interval over prompts
alone (what one run can give) ignores the first; on real HH-RLHF it was the larger.

- **Estimate.** The mean over seeds of the per-seed values θ_s (each a mean over prompts or pairs, or a set
  measure on the shared prompts).
- **Variance** (the crossed-design estimator of Owen 2007, "The pigeonhole bootstrap", *Ann. Appl. Statist.*
  1:386–411, §2, in its analytic form): `se² = s²_seeds / S + se²_prompts`, where `s²_seeds` is the sample variance
  of the θ_s and `se²_prompts` the prompt-sampling variance of the seed-averaged figure (the per-prompt averages
  over seeds, clustered by prompt for pairs; for a set measure the delete-a-group jackknife of
  `katcli.evaluation.jackknife` on the seed-averaged block deletions). It counts the seed × prompt interaction
  twice, so it errs wide, as Owen shows for the pigeonhole bootstrap; a bootstrap over only 3 seeds would instead
  err narrow (it has just 10 distinct resamples), which is why kat does not resample seeds.
- **Interval.** Student t with Welch–Satterthwaite degrees of freedom (Satterthwaite 1946, *Biometrics Bull.*
  2:110–114): with few seeds and a large seed variance the df fall towards S − 1 (t₀.₉₇₅ = 4.30 for 3 seeds), with
  a small one they rise towards the prompts'. On the logit scale of a bounded measure's range
  (`katcli.evaluation.intervals.bounded_t_interval`), and for an accuracy Wilson at the effective sample size
  (`effective_wilson`), so no interval leaves its range.
- **Differences** between two arms pair replicates by seed and prompts by id (`paired_matrix`): the per-seed,
  per-prompt differences are one more crossed design.

`prompt_only` is the interval one pools the replicates into while ignoring seeds (shown beside the across-seed one
in tests; kat reports it only for a single seed, where it is all there is). Pure functions of arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from katcli.evaluation.bootstrap import Estimate
from katcli.evaluation.intervals import INF, bounded_t_interval, bounded_t_p, effective_wilson
from katcli.evaluation.jackknife import jackknife_se

METHOD = ("mean over seeds; 95% t interval with se² = (variance over seeds)/S + prompt-sampling variance of the "
          "seed-averaged figure (crossed seeds × prompts, Owen 2007), Welch–Satterthwaite df")


@dataclass(frozen=True)
class Range:
    """A measure's range (None: unbounded), and whether it is a proportion of trials (Wilson)."""

    lo: float | None = None
    hi: float | None = None
    proportion: bool = False


def satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of variance components given as (variance, df)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / df for v, df in parts if df > 0 and v > 0)
    return INF if denom == 0 else total * total / denom


def cluster_mean_se(values: np.ndarray, clusters: Sequence[str] | None = None) -> tuple[float | None, float]:
    """(standard error, df) of the mean of `values` (NaN left out) with whole clusters as the sampling units (the
    ratio estimator's linearised variance, Cochran 1977 §6.11); every value its own cluster when None."""
    x = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(x)
    if clusters is None:
        which = np.arange(len(x))
    else:
        _, which = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    x, which = x[ok], which[ok]
    sums, sizes = np.bincount(which, weights=x), np.bincount(which).astype(np.float64)
    keep = sizes > 0
    sums, sizes = sums[keep], sizes[keep]
    c = len(sums)
    if c < 2:
        return None, 0.0
    mean = sums.sum() / sizes.sum()
    resid = sums - mean * sizes
    return float(np.sqrt(c / (c - 1) * np.sum(resid ** 2)) / sizes.sum()), float(c - 1)


def _interval(value: float, seed_var: float, s: int, prompt_se: float | None, prompt_df: float, rng: Range,
              n: int, n_trials: int) -> Estimate:
    parts = [(seed_var, float(s - 1))] if s > 1 else []
    if prompt_se is not None:
        parts.append((prompt_se ** 2, prompt_df))
    if not parts:
        return Estimate(value, None, None, n)
    se = float(np.sqrt(sum(v for v, _ in parts)))
    df = satterthwaite(parts)
    if rng.proportion:
        lo, hi = effective_wilson(value, se, n_trials, df)
    else:
        lo, hi = bounded_t_interval(value, se, df, rng.lo, rng.hi)
    return Estimate(value, lo, hi, n, se=se, df=df)


def _unit_means(m: np.ndarray) -> np.ndarray:
    """Each unit's mean over the seeds where it is defined (NaN where it is nowhere)."""
    ok = ~np.isnan(m)
    counts = ok.sum(axis=0)
    sums = np.where(ok, m, 0.0).sum(axis=0)
    out = np.full(m.shape[1], np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def across_seeds_mean(matrix: np.ndarray, rng: Range = Range(), clusters: Sequence[str] | None = None) -> Estimate:
    """A per-prompt (or per-pair) figure over seeds: `matrix[s, j]` is seed s's value on unit j (NaN: undefined),
    units clustered by `clusters` (pairs by prompt id); `n` is the units × seeds it rests on."""
    m = np.asarray(matrix, dtype=np.float64)
    per_seed = np.array([row[~np.isnan(row)].mean() if (~np.isnan(row)).any() else np.nan for row in m])
    per_seed = per_seed[~np.isnan(per_seed)]
    if len(per_seed) == 0:
        return Estimate(None, None, None, 0)
    unit_means = _unit_means(m)
    prompt_se, prompt_df = cluster_mean_se(unit_means, clusters)
    seed_var = float(per_seed.var(ddof=1)) / len(per_seed) if len(per_seed) > 1 else 0.0
    n = int((~np.isnan(m)).sum())
    return _interval(float(per_seed.mean()), seed_var, len(per_seed), prompt_se, prompt_df, rng, n, n)


def prompt_only(matrix: np.ndarray, rng: Range = Range(), clusters: Sequence[str] | None = None) -> Estimate:
    """The same figure with the seeds ignored: the replicates' per-prompt averages, an interval over prompts only."""
    m = np.asarray(matrix, dtype=np.float64)
    unit_means = _unit_means(m)
    prompt_se, prompt_df = cluster_mean_se(unit_means, clusters)
    ok = unit_means[~np.isnan(unit_means)]
    n = int((~np.isnan(m)).sum())
    return _interval(float(ok.mean()), 0.0, 1, prompt_se, prompt_df, rng, n, n)


def across_seeds_set(thetas: Sequence[float | None], reps: np.ndarray, rng: Range, n: int) -> Estimate:
    """A set measure over seeds: `thetas[s]` on the shared prompts, `reps[s, g]` with jackknife block g deleted
    (the same blocks for every seed)."""
    t = np.array([np.nan if v is None else v for v in thetas], dtype=np.float64)
    ok = ~np.isnan(t)
    if not ok.any():
        return Estimate(None, None, None, n)
    t, r = t[ok], np.asarray(reps, dtype=np.float64)[ok]
    prompt_se, prompt_df = jackknife_se(r.mean(axis=0))
    seed_var = float(t.var(ddof=1)) / len(t) if len(t) > 1 else 0.0
    return _interval(float(t.mean()), seed_var, len(t), prompt_se, prompt_df, rng, n * len(t), n * len(t))


def with_test(est: Estimate, rng: Range) -> Estimate:
    """A difference's estimate with its two-sided p-value of no difference, on its interval's scale."""
    if est.value is None or est.se is None:
        return est
    return est.with_p(bounded_t_p(est.value, est.se, est.df, 0.0, rng.lo, rng.hi))


def difference_range(rng: Range) -> Range:
    """The range of a difference of two values of a measure of range `rng`."""
    if rng.lo is None or rng.hi is None:
        return Range()
    span = rng.hi - rng.lo
    return Range(-span, span)


def paired_matrix(
    a: Mapping[int, Mapping[str, float | None]], b: Mapping[int, Mapping[str, float | None]]
) -> tuple[list[int], list[str], np.ndarray]:
    """(seeds, unit ids, a − b) of two arms' replicates `{seed: {unit id: value}}`, paired by seed and unit id;
    seeds and units only one arm has are left out (NaN where either value is undefined)."""
    seeds = sorted(set(a) & set(b))
    units = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds))) if seeds else []
    out = np.full((len(seeds), len(units)), np.nan)
    for i, s in enumerate(seeds):
        for j, u in enumerate(units):
            va, vb = a[s][u], b[s][u]
            if va is not None and vb is not None:
                out[i, j] = float(va) - float(vb)
    return seeds, units, out

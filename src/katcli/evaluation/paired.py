"""Paired comparison of two models scored on the same held-out pairs: is B's accuracy really different from A's?

Two models evaluated on one held-out set are not independent samples, so their two Wilson intervals overlapping
says little. Both tests here use the pairing:

- **McNemar's exact test.** Only discordant pairs carry information: `a_only` pairs A gets right and B wrong,
  `b_only` the reverse. Under "no difference" each discordant pair is a fair coin, so the two-sided p-value is
  `min(1, 2 · P(X ≤ min(a_only, b_only)))` with `X ~ Binomial(a_only + b_only, 1/2)` (1 when nothing is
  discordant), computed in log space so thousands of pairs neither overflow nor underflow.
- **A paired bootstrap interval** for `Δ = acc(B) − acc(A)`: held-out *prompts* are resampled with replacement
  (a prompt brings all its pairs, since pairs of one prompt are correlated), Δ is recomputed on each resample as
  pairs right minus pairs right over the resample's pairs, and the 2.5th and 97.5th percentiles are the 95%
  interval. The resamples are `katcli.evaluation.bootstrap.resamples` (`kat eval policy`'s), seeded per group
  (1000 resamples, seed 0), so the same scores give the same interval.

A pair is correct when its margin is strictly positive (ties count as wrong), as in `katcli.train.metrics`. Groups
(per source, per density quintile) are compared the same way on their own pairs. This module computes numbers from
arrays; it knows nothing about models, files or rendering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from katcli.evaluation.bootstrap import DEFAULT_RESAMPLES, resamples

N_RESAMPLES = DEFAULT_RESAMPLES
SEED = 0
METHOD = "McNemar exact test; 95% percentile bootstrap over held-out prompts"


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts."""
    if a_only < 0 or b_only < 0:
        raise ValueError("discordant counts cannot be negative")
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(log_terms)
    log_tail = top + math.log(math.fsum(math.exp(t - top) for t in log_terms)) - n * math.log(2)
    return min(1.0, 2.0 * math.exp(log_tail))


def paired_bootstrap_interval(
    diff: np.ndarray,
    clusters: Sequence[str],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    label: str = "overall",
) -> tuple[float, float]:
    """95% percentile interval of the mean per-pair `diff` (B correct − A correct), resampling whole clusters.

    `label` names the group, so each group draws its own seeded resamples.
    """
    diff = np.asarray(diff, dtype=np.float64)
    if len(diff) != len(clusters):
        raise ValueError("diff and clusters differ in length")
    if len(diff) == 0:
        return -1.0, 1.0
    _, which = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    sums = np.bincount(which, weights=diff)
    sizes = np.bincount(which).astype(np.float64)
    idx = resamples(len(sums), seed, "paired-accuracy", label, b=n_resamples)
    deltas = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedDiff:
    """B against A on the same pairs: Δ accuracy, its paired interval and McNemar's p-value."""

    n: int
    a_correct: int
    b_correct: int
    a_only: int  # A right, B wrong
    b_only: int  # B right, A wrong
    ci95: tuple[float, float]
    p_value: float

    @property
    def delta(self) -> float:
        return (self.b_correct - self.a_correct) / self.n if self.n else float("nan")

    def to_json(self) -> dict[str, Any]:
        lo, hi = self.ci95
        return {
            "n": self.n,
            "delta": round(self.delta, 6) if self.n else None,
            "ci95": [round(lo, 6), round(hi, 6)],
            "a_only_correct": self.a_only,
            "b_only_correct": self.b_only,
            "mcnemar_p": float(f"{self.p_value:.6g}"),
        }


def paired_diff(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    prefix_ids: Sequence[str],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    label: str = "overall",
) -> PairedDiff:
    """Compare two models' per-pair correctness (same pairs, same order; `prefix_ids` cluster the bootstrap)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or len(a) != len(prefix_ids):
        raise ValueError("both models must be scored on the same pairs")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    interval = paired_bootstrap_interval(
        b.astype(np.float64) - a.astype(np.float64), prefix_ids, n_resamples=n_resamples, seed=seed, label=label
    )
    return PairedDiff(len(a), int(a.sum()), int(b.sum()), a_only, b_only, interval, mcnemar_exact_p(a_only, b_only))


def compare_margins(
    margins_a: np.ndarray,
    margins_b: np.ndarray,
    *,
    sources: Sequence[str],
    prefix_ids: Sequence[str],
    quintiles: Sequence[int] | None = None,
    n_groups: int = 5,
    seed: int = SEED,
) -> dict[str, Any]:
    """Paired B-vs-A statistics overall, per source and (given each pair's quintile) per density quintile."""
    a = np.asarray(margins_a, dtype=np.float64) > 0
    b = np.asarray(margins_b, dtype=np.float64) > 0
    pids = np.asarray(prefix_ids, dtype=object)

    def on(mask: np.ndarray, label: str) -> dict[str, Any]:
        return paired_diff(a[mask], b[mask], list(pids[mask]), seed=seed, label=label).to_json()

    src = np.asarray(sources, dtype=object)
    out: dict[str, Any] = {
        "overall": on(np.ones(len(a), dtype=bool), "overall"),
        "by_source": {s: on(src == s, f"source:{s}") for s in sorted(set(sources))},
        "by_quintile": None,
        "method": METHOD,
        "resamples": N_RESAMPLES,
        "seed": seed,
    }
    if quintiles is not None:
        q = np.asarray(quintiles)
        out["by_quintile"] = [on(q == k, f"quintile:{k}") for k in range(n_groups)]
    return out

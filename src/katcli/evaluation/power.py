"""Power and multiplicity for comparisons: the minimum detectable difference, and Holm's adjustment.

- `mdd(se, df)`: the smallest true difference a two-sided test at α = .05 detects with 80% power given the
  comparison's standard error, `(t_{1−α/2} + t_{power})·se` (the normal-theory power formula, Cohen 1988,
  *Statistical Power Analysis for the Behavioral Sciences*, §2.3; with t quantiles for small df). The standard
  error is the comparison's own (paired over prompts, and over seeds where there are replicates), so the MDD is
  for its n (prompts × seeds).
- `n_needed(delta, se, n)`: how many units (prompts, pairs) the same comparison needs to resolve `delta` at that
  power, scaling se ∝ 1/√n.
- `holm(p_values)`: Holm's step-down adjustment (Holm 1979, "A simple sequentially rejective multiple test
  procedure", *Scand. J. Statist.* 6:65–70), which controls the family-wise error rate under any dependence; kat
  applies it over the five density quintiles of one comparison (one measure, one pair of models).

Pure functions of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from katcli.evaluation.intervals import INF, t_quantile

ALPHA = 0.05
POWER = 0.80
METHOD = ("minimum detectable difference at 80% power, two-sided α = .05: (t₀.₉₇₅ + t₀.₈₀)·SE; "
          "Holm step-down adjustment over the five density quintiles")


def mdd(se: float | None, df: float = INF, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Minimum detectable difference at `power` for a two-sided level-`alpha` test with standard error `se`."""
    if se is None or not math.isfinite(se) or df is None or df <= 0:
        return None
    return (t_quantile(1.0 - alpha / 2.0, df) + t_quantile(power, df)) * se


def n_needed(delta: float, se: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Units needed to detect `delta` when `n` units give standard error `se` (large-sample, se ∝ 1/√n)."""
    if delta == 0 or se is None or se <= 0 or n <= 0:
        return None
    z = t_quantile(1.0 - alpha / 2.0, INF) + t_quantile(power, INF)
    return math.ceil(n * (z * se / abs(delta)) ** 2)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values, same order (None stays None and is not counted in the family)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out

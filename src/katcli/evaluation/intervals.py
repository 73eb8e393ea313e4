"""Interval arithmetic shared by every estimator: Student-t quantiles, and t intervals that stay inside a measure's
range.

- `t_quantile(p, df)`: the Student-t quantile, by bisection on the CDF written with the regularised incomplete
  beta function (continued fraction, Press et al., *Numerical Recipes* 3rd ed. §6.4); `df = inf` is the normal.
- `bounded_t_interval(value, se, df, lo, hi)`: `value ± t·se` computed on the logit scale of the measure's range
  `(lo, hi)` and mapped back (the delta method, se_g = se·g'(value)), so the interval lies inside the range by
  construction, is symmetric for central values and asymmetric near a bound, as transformation-respecting
  intervals are (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, §12.6 and ch. 13). A half-bounded
  range uses log(value − lo); an unbounded one the plain interval. A value on a bound with se = 0 is a point.
- `effective_wilson(p, se, n_max, df)`: a proportion whose standard error comes from a design (clusters,
  replicate seeds) rather than from n independent trials: the Wilson score interval at the effective sample size
  n* = p(1 − p)/se², capped at the number of trials `n_max` (Korn & Graubard 1998, "Confidence intervals for
  proportions with small expected number of positive counts estimated from survey data", *Survey Methodology*
  24:193–201), with the t quantile for `df`. It stays in [0, 1] and is honest at 0/n and n/n.

Pure functions of numbers; nothing about measures, models or files.
"""

from __future__ import annotations

import math
from statistics import NormalDist

INF = float("inf")


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    if df == INF:
        return NormalDist().cdf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (any real df > 0)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    if df == INF or df > 1e7:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic."""
    return min(1.0, 2.0 * t_cdf(-abs(t), df))


def bounded_t_interval(
    value: float, se: float, df: float, lo: float | None = None, hi: float | None = None, level: float = 0.95
) -> tuple[float, float]:
    """`value ± t·se` on the logit (or log) scale of the range `(lo, hi)`, mapped back inside the range."""
    q = t_quantile(0.5 + level / 2.0, df)
    if se == 0.0 or not math.isfinite(se):
        return (value, value) if se == 0.0 else (lo if lo is not None else -INF, hi if hi is not None else INF)
    if lo is None and hi is None:
        return value - q * se, value + q * se
    if hi is None or lo is None:  # half-bounded: the log of the distance from the bound
        bound, sign = (lo, 1.0) if hi is None else (hi, -1.0)
        gap = sign * (value - bound)
        if gap <= 0.0:  # on the bound with some spread: the interval reaches inwards only
            ends = (bound, bound + sign * q * se)
        else:
            ends = (bound + sign * gap * math.exp(-q * se / gap), bound + sign * gap * math.exp(q * se / gap))
        return min(ends), max(ends)
    width = hi - lo
    if value <= lo or value >= hi:  # on a bound with some spread: the interval reaches inwards only
        return (lo, lo + min(width, q * se)) if value <= lo else (hi - min(width, q * se), hi)
    u = (value - lo) / width
    g, half = math.log(u / (1.0 - u)), q * se / (width * u * (1.0 - u))
    inv = lambda z: lo + width / (1.0 + math.exp(-z))  # noqa: E731
    return inv(g - half), inv(g + half)


def effective_wilson(p: float, se: float, n_max: float, df: float = INF, level: float = 0.95) -> tuple[float, float]:
    """Wilson at the effective sample size p(1 − p)/se² (at most `n_max`), with the t quantile for `df`."""
    from katcli.train.metrics import wilson_interval  # the one Wilson formula (it takes fractional trials too)

    n_eff = n_max if se <= 0.0 or p * (1 - p) <= 0.0 else min(n_max, p * (1 - p) / (se * se))
    return wilson_interval(p * n_eff, n_eff, t_quantile(0.5 + level / 2.0, df))


def _scale(x: float, lo: float | None, hi: float | None) -> tuple[float, float]:
    """(g(x), g'(x)) of the transform `bounded_t_interval` uses for the range (lo, hi)."""
    if lo is not None and hi is not None:
        u = (x - lo) / (hi - lo)
        return math.log(u / (1.0 - u)), 1.0 / ((hi - lo) * u * (1.0 - u))
    if lo is not None:
        return math.log(x - lo), 1.0 / (x - lo)
    if hi is not None:
        return -math.log(hi - x), 1.0 / (hi - x)
    return x, 1.0


def bounded_t_p(
    value: float, se: float, df: float, null: float, lo: float | None = None, hi: float | None = None
) -> float:
    """Two-sided p-value of `value` against `null` on the scale `bounded_t_interval` uses, so that p < .05 exactly
    when the 95% interval excludes `null` (1 for no spread and no difference, 0 for no spread and a difference)."""
    inside = all(b is None or x != b for x in (value, null) for b in (lo, hi))
    if se <= 0.0 or not inside:
        return 1.0 if value == null else (0.0 if se <= 0.0 else t_two_sided_p((value - null) / se, df))
    g, slope = _scale(value, lo, hi)
    return t_two_sided_p((g - _scale(null, lo, hi)[0]) / (se * slope), df)

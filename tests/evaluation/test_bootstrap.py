"""Bootstrap intervals over prompts: seeded, paired, and honest about set measures."""

from __future__ import annotations

import numpy as np
import pytest

from katcli.evaluation import bootstrap as B
from katcli.evaluation.diversity import vendi_from_similarity, vendi_score


def test_resamples_are_seeded_per_group():
    a = B.resamples(30, 0, "overall")
    assert np.array_equal(a, B.resamples(30, 0, "overall"))
    assert not np.array_equal(a, B.resamples(30, 1, "overall"))
    assert not np.array_equal(a, B.resamples(30, 0, "Q1"))
    assert a.shape == (B.DEFAULT_RESAMPLES, 30) and a.min() >= 0 and a.max() < 30


def test_mean_interval_covers_the_mean_and_skips_undefined_prompts():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=200)
    est = B.mean_interval(list(x), B.resamples(200, 0, "g"))
    assert est.lo < est.value < est.hi and est.value == pytest.approx(x.mean())
    # the interval is about ±1.96 standard errors wide
    assert est.hi - est.lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(200), rel=0.2)
    with_none = B.mean_interval([1.0, None, 3.0], B.resamples(3, 0, "g"))
    assert with_none.value == 2.0 and with_none.n == 2
    assert B.mean_interval([None, None], B.resamples(2, 0, "g")).value is None


def test_paired_difference_of_a_policy_with_itself_is_zero():
    x = list(np.random.default_rng(1).normal(size=50))
    idx = B.resamples(50, 0, "g")
    d = B.paired_mean_interval(x, x, idx)
    assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0)
    # a constant shift is recovered exactly, whatever the spread of the values
    shifted = B.paired_mean_interval([v + 0.3 for v in x], x, idx)
    assert shifted.value == pytest.approx(0.3) and shifted.lo == pytest.approx(0.3) and shifted.hi == pytest.approx(0.3)


def test_set_interval_is_the_bias_corrected_bootstrap_around_the_full_set_value():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(40, 8))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = unit @ unit.T
    stat = lambda c: vendi_from_similarity(sim, c)  # noqa: E731
    members = np.arange(40)
    idx = B.resamples(40, 0, "g", b=B.SET_RESAMPLES)
    counts = B.resample_counts(members, idx, 40)
    assert (counts.sum(axis=1) == 40).all() and np.array_equal(counts[0], np.bincount(idx[0], minlength=40))
    full = np.ones(40, dtype=np.int64)
    est = B.set_interval(stat, full, counts)
    theta, draws = B.set_draws(stat, full, counts)
    assert est.value == pytest.approx(vendi_score(emb)) == pytest.approx(theta)
    # a resample's value is the measure of its multiset: the same as scoring the repeated rows directly
    assert draws[0] == pytest.approx(vendi_score(emb[idx[0]]))
    q_lo, q_hi = np.percentile(draws, [2.5, 97.5])
    bias = draws.mean() - theta
    assert (est.lo, est.hi) == pytest.approx((q_lo - bias, q_hi - bias))
    # resamples repeat prompts, so they look less diverse than the full set; the corrected interval still covers it
    assert q_hi < theta and est.lo < theta < est.hi
    same = B.paired_set_interval((theta, draws), (theta, draws), 40)
    assert (same.value, same.lo, same.hi) == (0.0, 0.0, 0.0)

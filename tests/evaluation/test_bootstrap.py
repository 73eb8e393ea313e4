"""Bootstrap intervals over prompts: seeded, paired, and honest about set measures."""

from __future__ import annotations

import numpy as np
import pytest

from katcli.evaluation import bootstrap as B


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

"""density → weights: direction, eps, power, max-ratio, normalisation, statistics, Spearman."""

from __future__ import annotations

import math

import numpy as np
import pytest

from katcli.density.weights import (
    WeightParams,
    density_from_similarities,
    density_weights,
    effective_sample_size,
    weight_statistics,
)
from katcli.errors import ConfigError


def test_density_is_the_clamped_mean_of_neighbour_similarities():
    sims = np.array([[0.9, 0.7, 0.5], [0.2, -0.1, -0.4], [1.0000001, 1.0000001, 1.0]], dtype=np.float32)
    d = density_from_similarities(sims)
    assert d.dtype == np.float64
    assert d[0] == pytest.approx(0.7, abs=1e-7)
    assert d[1] == 0.0  # mean -0.1 clamps to 0
    assert d[2] == 1.0  # float32 rounding above 1 clamps to 1


def test_density_does_not_depend_on_neighbour_order():
    rng = np.random.default_rng(3)
    sims = rng.uniform(0, 1, (50, 20)).astype(np.float32)
    shuffled = np.take_along_axis(sims, rng.permuted(np.tile(np.arange(20), (50, 1)), axis=1), axis=1)
    assert density_from_similarities(sims).tobytes() == density_from_similarities(shuffled).tobytes()


def test_rare_prompts_weigh_more_and_weights_sum_to_one():
    d = np.array([0.9, 0.5, 0.1, 0.0])
    w = density_weights(d, WeightParams(eps=1e-3, power=1.0)).weights
    assert np.all(np.diff(w) > 0)  # lower density → higher weight
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    raw = (d + 1e-3) ** -1.0
    np.testing.assert_allclose(w, raw / raw.sum(), rtol=1e-12)


def test_power_sharpens_and_zero_power_is_uniform():
    d = np.array([0.8, 0.4, 0.2])
    w1 = density_weights(d, WeightParams(power=1.0)).weights
    w2 = density_weights(d, WeightParams(power=2.0)).weights
    assert w2.max() / w2.min() == pytest.approx((w1.max() / w1.min()) ** 2, rel=1e-9)
    np.testing.assert_allclose(density_weights(d, WeightParams(power=0.0)).weights, np.full(3, 1 / 3))


def test_eps_bounds_the_weight_of_an_isolated_prompt():
    d = np.array([0.0, 0.5])
    w = density_weights(d, WeightParams(eps=0.5)).weights
    assert w[0] / w[1] == pytest.approx(2.0, rel=1e-12)  # (0 + 0.5)^-1 / (0.5 + 0.5)^-1
    w = density_weights(d, WeightParams(eps=1e-3)).weights
    assert np.isfinite(w).all() and w[0] / w[1] == pytest.approx(0.501 / 0.001, rel=1e-12)


def test_max_ratio_clips_to_r_times_the_smallest():
    d = np.array([0.9, 0.5, 0.05, 0.0])
    res = density_weights(d, WeightParams(eps=1e-3, power=1.0, max_ratio=3.0))
    w = res.weights
    assert w.max() / w.min() == pytest.approx(3.0, rel=1e-12)
    assert res.n_clipped == 2  # 0.05 and 0.0 both exceed 3× the weight at 0.9
    assert w[2] == w[3]
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    unclipped = density_weights(d, WeightParams(eps=1e-3, power=1.0, max_ratio=1e6))
    assert unclipped.n_clipped == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": 0.0}, "--eps must be a positive number (got 0.0)"),
        ({"eps": -1.0}, "--eps must be a positive number (got -1.0)"),
        ({"power": -1.0}, "--power must be a number ≥ 0 (got -1.0)"),
        ({"max_ratio": 0.5}, "--max-ratio must be at least 1 (got 0.5)"),
        ({"max_ratio": math.inf}, "--max-ratio must be at least 1 (got inf)"),
    ],
)
def test_bad_parameters_name_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        WeightParams(**kwargs)
    assert err.value.message == message


def test_ess_and_statistics():
    n = 1000
    assert effective_sample_size(np.full(n, 1 / n)) == pytest.approx(n)
    w = np.zeros(n) + 1e-12
    w[0] = 1.0
    assert effective_sample_size(w) == pytest.approx(1.0, rel=1e-6)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    stats = weight_statistics(w)
    assert stats["ess"] == pytest.approx(1 / np.sum(w**2))
    assert stats["ess_fraction"] == pytest.approx(stats["ess"] / 4)
    assert stats["min"] == 0.1 and stats["max"] == 0.4
    assert stats["max_min_ratio"] == pytest.approx(4.0)
    assert stats["percentiles"]["p50"] == pytest.approx(0.25)
    assert list(stats["percentiles"]) == ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]

"""Sampling above --max-points: bounded, seeded, and it always keeps the rarest prompts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from katcli.errors import ConfigError
from katcli.viz.sampling import DEFAULT_RARE_FRACTION, rarest_first, select_points


def _weights(n: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).lognormal(sigma=1.5, size=n)
    return w / w.sum()


def test_everything_is_shown_at_or_below_the_limit():
    sel = select_points(_weights(50), max_points=50, seed=3)
    assert sel.indices.tolist() == list(range(50))
    assert (sel.n_total, sel.n_shown, sel.n_rare, sel.sampled) == (50, 50, 0, False)


def test_sample_is_bounded_unique_sorted_and_keeps_the_rarest():
    w = _weights(1000)
    sel = select_points(w, max_points=100, seed=7)
    idx = sel.indices
    assert sel.n_shown == 100 and sel.n_total == 1000 and sel.sampled
    assert len(set(idx.tolist())) == 100
    assert idx.tolist() == sorted(idx.tolist())
    n_rare = math.ceil(DEFAULT_RARE_FRACTION * 100)
    assert sel.n_rare == n_rare
    rarest = set(np.argsort(-w)[:n_rare].tolist())
    assert rarest <= set(idx.tolist())


def test_the_rarest_are_kept_for_every_seed_and_the_rest_varies():
    w = _weights(2000, seed=1)
    rare = set(np.argsort(-w)[:60].tolist())
    samples = [set(select_points(w, max_points=300, seed=s).indices.tolist()) for s in range(4)]
    for s in samples:
        assert rare <= s
    assert len({frozenset(s) for s in samples}) == 4


def test_same_seed_same_sample():
    w = _weights(5000, seed=2)
    a = select_points(w, max_points=400, seed=11).indices
    b = select_points(w.copy(), max_points=400, seed=11).indices
    assert np.array_equal(a, b)


def test_a_budget_of_one_keeps_the_single_rarest():
    w = _weights(300, seed=4)
    assert select_points(w, max_points=1, seed=0).indices.tolist() == [int(np.argmax(w))]


def test_ties_are_broken_by_row_order():
    w = np.array([1.0, 3.0, 2.0, 3.0, 3.0, 1.0])
    assert rarest_first(w).tolist() == [1, 3, 4, 2, 0, 5]
    sel = select_points(w, max_points=5, seed=0, rare_fraction=0.4)
    assert {1, 3} <= set(sel.indices.tolist())


def test_max_points_below_one_names_the_flag():
    with pytest.raises(ConfigError, match="^--max-points must be at least 1$"):
        select_points(_weights(10), max_points=0, seed=0)

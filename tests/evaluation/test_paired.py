"""Paired comparison of two models on the same pairs: McNemar's exact test and the prompt-level bootstrap."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from katcli.evaluation.paired import compare_margins, mcnemar_exact_p, paired_bootstrap_interval, paired_diff


def _exact(a_only: int, b_only: int) -> float:
    n, k = a_only + b_only, min(a_only, b_only)
    return float(min(Fraction(1), 2 * Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)))


@pytest.mark.parametrize(
    "a_only,b_only,expected",
    [
        (0, 5, 2 / 32),  # 2 · P(X ≤ 0), X ~ Bin(5, ½)
        (5, 0, 2 / 32),  # symmetric
        (1, 9, 22 / 1024),  # 2 · (1 + 10) / 2¹⁰
        (2, 8, 2 * (1 + 10 + 45) / 1024),
        (3, 4, 1.0),  # 2 · 64/128 = 1
        (6, 6, 1.0),  # clipped at 1
        (0, 0, 1.0),  # nothing discordant: no evidence
        (0, 1, 1.0),
    ],
)
def test_mcnemar_exact_p_by_hand(a_only, b_only, expected):
    assert mcnemar_exact_p(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_many_discordant_pairs_matches_exact_arithmetic():
    for a_only, b_only in [(400, 470), (4000, 4200), (10, 3000)]:
        p = mcnemar_exact_p(a_only, b_only)
        assert p == pytest.approx(_exact(a_only, b_only), rel=1e-9)
        assert 0.0 <= p <= 1.0
    assert mcnemar_exact_p(0, 5000) == pytest.approx(2.0**-4999, rel=1e-9)  # tiny, not zero
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 3)


def test_bootstrap_two_prompts_by_hand():
    # Prompt A: B wins its one pair (diff 1); prompt B: a tie (diff 0). Resamples: AA → 1 (p ¼), AB → ½, BB → 0.
    lo, hi = paired_bootstrap_interval(np.array([1.0, 0.0]), ["A", "B"], n_resamples=4000, seed=3)
    assert (lo, hi) == (0.0, 1.0)  # a quarter of the resamples sit at each end


def test_bootstrap_resamples_whole_prompts():
    # Every pair of one prompt moves together: one prompt means no resampling variation at all.
    assert paired_bootstrap_interval(np.array([1.0, 1.0, 0.0, -1.0]), ["p"] * 4) == (0.25, 0.25)
    # Same diffs, clustered by prompt vs every pair its own prompt: clustering widens the interval.
    diff = np.array([1.0] * 10 + [0.0] * 10 + [-1.0] * 10 + [0.0] * 10)
    clustered = paired_bootstrap_interval(diff, [f"p{i // 10}" for i in range(40)])
    independent = paired_bootstrap_interval(diff, [f"p{i}" for i in range(40)])
    assert clustered[1] - clustered[0] > 1.5 * (independent[1] - independent[0])


def test_bootstrap_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(0)
    diff = rng.choice([-1.0, 0.0, 1.0], size=300, p=[0.2, 0.5, 0.3])
    pids = [f"p{i // 3}" for i in range(300)]
    first = paired_bootstrap_interval(diff, pids, seed=7)
    assert paired_bootstrap_interval(diff, pids, seed=7) == first
    assert paired_bootstrap_interval(diff, pids, seed=8) != first
    assert paired_bootstrap_interval(diff, pids, seed=7, label="source:x") != first  # each group its own stream
    assert first[0] < diff.mean() < first[1]
    assert paired_bootstrap_interval(np.ones(20), [f"p{i}" for i in range(20)]) == (1.0, 1.0)
    assert paired_bootstrap_interval(np.zeros(0), []) == (-1.0, 1.0)


def test_paired_diff_counts_the_discordant_pairs():
    a = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([1, 0, 1, 1, 1, 1], dtype=bool)
    d = paired_diff(a, b, ["x", "x", "y", "y", "z", "w"])
    assert (d.n, d.a_correct, d.b_correct, d.a_only, d.b_only) == (6, 3, 5, 1, 3)
    assert d.delta == pytest.approx(2 / 6)
    assert d.p_value == pytest.approx(2 * 5 / 16)  # n = 4, k = 1: 2 · (1 + 4)/16
    j = d.to_json()
    assert j["a_only_correct"] == 1 and j["b_only_correct"] == 3 and j["mcnemar_p"] == 0.625
    assert j["ci95"][0] <= j["delta"] <= j["ci95"][1]
    with pytest.raises(ValueError, match="same pairs"):
        paired_diff(a, b[:5], ["x"] * 6)


def test_compare_groups_by_source_and_quintile_using_strict_margins():
    margins_a = np.array([0.5, -1.0, 0.0, 2.0])  # correct: T F F T (a tie is wrong)
    margins_b = np.array([0.1, 0.3, 0.2, -0.4])  # correct: T T T F
    out = compare_margins(margins_a, margins_b, sources=["s1", "s1", "s2", "s2"], prefix_ids=["p", "q", "r", "s"],
                  quintiles=[0, 0, 4, 4])
    assert out["overall"]["a_only_correct"] == 1 and out["overall"]["b_only_correct"] == 2
    assert out["by_source"]["s1"]["delta"] == pytest.approx(0.5)
    assert out["by_source"]["s2"]["delta"] == pytest.approx(0.0)
    assert [q["n"] for q in out["by_quintile"]] == [2, 0, 0, 0, 2]
    assert out["by_quintile"][1]["delta"] is None
    assert "McNemar" in out["method"] and "bootstrap over held-out prompts" in out["method"]
    assert compare_margins(margins_a, margins_b, sources=["s"] * 4, prefix_ids=list("pqrs"))["by_quintile"] is None

"""The evaluation prompt draw: equal counts per density quintile, seeded, nested as --prompts grows."""

from __future__ import annotations

import pytest

from katcli.errors import ConfigError
from katcli.evaluation.prompts import _quotas, draw_prompts

IDS = [f"p{i:03d}" for i in range(100)]
WEIGHTS = {pid: float(i + 1) for i, pid in enumerate(IDS)}  # p000 commonest … p099 rarest


def test_equal_counts_per_quintile_and_rare_prompts_are_the_rare_ones():
    d = draw_prompts(IDS, 20, seed=0, weights=WEIGHTS)
    assert d.stratified and d.per_quintile() == [4, 4, 4, 4, 4]
    for pid, q in zip(d.ids, d.quintile):
        assert int(pid[1:]) // 20 == q  # quintile k holds the k-th fifth by weight
    assert d.available == (20, 20, 20, 20, 20)


def test_draw_is_seeded_and_nested():
    a = draw_prompts(IDS, 10, seed=0, weights=WEIGHTS)
    assert a == draw_prompts(list(reversed(IDS)), 10, seed=0, weights=WEIGHTS)  # input order does not matter
    assert a.ids != draw_prompts(IDS, 10, seed=1, weights=WEIGHTS).ids
    assert set(a.ids) <= set(draw_prompts(IDS, 30, seed=0, weights=WEIGHTS).ids)


def test_without_weights_the_draw_is_uniform_and_says_so():
    d = draw_prompts(IDS, 7, seed=0)
    assert not d.stratified and d.quintile == (None,) * 7 and len(set(d.ids)) == 7
    assert len(draw_prompts(IDS[:3], 7, seed=0).ids) == 3  # all of them when there are fewer


def test_short_quintiles_are_made_up_by_the_others_rarest_first():
    assert _quotas(10, [1, 5, 5, 5, 5]) == [1, 2, 2, 2, 3]
    assert _quotas(12, [20] * 5) == [2, 2, 2, 3, 3]
    assert _quotas(50, [2, 2, 2, 2, 2]) == [2, 2, 2, 2, 2]
    with pytest.raises(ConfigError, match="--prompts"):
        draw_prompts(IDS, 0, seed=0)

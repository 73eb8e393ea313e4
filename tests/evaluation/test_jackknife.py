"""Set-measure intervals (delete-a-group jackknife), range-respecting t intervals, power and Holm, by hand and on
collapsed, random and quickstart-like reply sets: no interval ever leaves its measure's range."""

from __future__ import annotations

import math

import evalkit
import numpy as np
import pytest

from katcli.evaluation import intervals as I
from katcli.evaluation import jackknife as J
from katcli.evaluation.diversity import vendi_from_similarity
from katcli.evaluation.generate import Reply
from katcli.evaluation.measures import PolicyOutputs, compare_policies, measure_range
from katcli.evaluation.power import holm, mdd, n_needed
from katcli.sample.content import FACTS, HARMFUL, HOWTO


def test_t_quantiles_and_p_values_match_tables():
    assert I.t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert I.t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert I.t_quantile(0.8, 10) == pytest.approx(0.879058, abs=1e-6)
    assert I.t_quantile(0.025, 5) == pytest.approx(-2.570582, abs=1e-6)
    assert I.t_quantile(0.975, I.INF) == pytest.approx(1.959964, abs=1e-6)
    assert I.t_two_sided_p(2.228139, 10) == pytest.approx(0.05, abs=1e-6)


def test_bounded_interval_is_the_plain_one_far_from_bounds_and_inside_near_them():
    lo, hi = I.bounded_t_interval(0.5, 0.01, I.INF, 0.0, 1.0)
    assert (lo, hi) == pytest.approx((0.5 - 1.96 * 0.01, 0.5 + 1.96 * 0.01), abs=1e-4)
    assert I.bounded_t_interval(0.5, 0.01, I.INF) == pytest.approx((0.5 - 0.0196, 0.5 + 0.0196), abs=1e-4)
    near = I.bounded_t_interval(0.98, 0.03, 2, 0.0, 1.0)  # value ± t·se would reach 1.11
    assert 0.0 < near[0] < 0.98 < near[1] < 1.0
    assert I.bounded_t_interval(1.0, 0.0, 5, 0.0, 1.0) == (1.0, 1.0)
    low = I.bounded_t_interval(0.2, 0.5, 3, 0.0, None)  # half-bounded: a log interval above 0
    assert 0.0 < low[0] < 0.2 < low[1]
    # p < .05 exactly when the interval excludes the null
    for value, se in [(0.3, 0.1), (0.15, 0.08), (-0.9, 0.2)]:
        a, b = I.bounded_t_interval(value, se, 20, -1.0, 1.0)
        assert (I.bounded_t_p(value, se, 20, 0.0, -1.0, 1.0) < 0.05) == (not a <= 0.0 <= b)


def test_effective_wilson_is_wilson_for_independent_trials_and_honest_at_n_of_n():
    p, n = 0.3, 200
    se = math.sqrt(p * (1 - p) / n)
    from katcli.train.metrics import wilson_interval

    assert I.effective_wilson(p, se, n) == pytest.approx(wilson_interval(60, 200))
    assert I.effective_wilson(p, 2 * se, n)[1] - I.effective_wilson(p, 2 * se, n)[0] > 1.8 * (
        wilson_interval(60, 200)[1] - wilson_interval(60, 200)[0])  # a design effect of 4 widens it ~2x
    lo, hi = I.effective_wilson(1.0, 0.0, 20)
    assert hi == 1.0 and lo == pytest.approx(wilson_interval(20, 20)[0])


def test_mdd_and_pairs_needed_reproduce_the_issue_figures():
    # 466 held-out pairs give a paired interval of about ±4.5 points: SE ≈ 2.3 points
    se = 0.045 / 1.96
    assert mdd(se) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-6)
    assert 2000 < n_needed(0.03, se, 466) < 2400  # "roughly 2,200 pairs" for a 3-point difference
    assert mdd(se, 2) == pytest.approx((4.302653 + 1.060660) * se, rel=1e-5)  # t quantiles at 2 df (3 seeds)
    assert mdd(None) is None


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.5, None]) == pytest.approx([0.04, 0.09, 0.09, 0.5, None])
    assert holm([0.2, 0.2]) == [0.4, 0.4]
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_blocks_are_a_seeded_balanced_partition():
    b = J.blocks(103, 0, "overall")
    assert np.array_equal(b, J.blocks(103, 0, "overall")) and not np.array_equal(b, J.blocks(103, 0, "Q1"))
    assert sorted(np.bincount(b)) == [2] * 47 + [3] * 3  # 50 blocks of near-equal size
    assert np.array_equal(np.sort(J.blocks(7, 0, "g")), np.arange(7))  # fewer members than blocks: delete-1


def test_delete_one_jackknife_by_hand_and_a_policy_against_itself():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6])
    stat = lambda c: float((c * x).sum() / c.sum())  # noqa: E731  (the mean: the jackknife SE is s/√n)
    members, full = np.arange(5), np.ones(5, dtype=np.int64)
    d = J.set_draws(stat, full, members, J.blocks(5, 0, "g"))
    se, df = J.jackknife_se(d.reps)
    assert se == pytest.approx(x.std(ddof=1) / math.sqrt(5)) and df == 4
    est = J.set_estimate(d, 5, 0.0, 1.0)
    assert est.lo < x.mean() < est.hi and 0.0 < est.lo and est.hi < 1.0
    same = J.paired_set_estimate(d, d, 5, 0.0, 1.0)
    assert (same.value, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    one = J.set_draws(stat, np.array([1, 0, 0, 0, 0]), np.array([0]), J.blocks(1, 0, "g"))
    assert J.set_estimate(one, 1, 0.0, 1.0).lo is None  # one prompt: a value, no interval


def _outputs(name, texts_per_prompt, emb):
    replies = [[Reply(t, len(t.split()), False) for t in ts] for ts in texts_per_prompt]
    return PolicyOutputs(name, replies, rewards={"rm": [[float(len(t)) / 50 for t in ts] for ts in texts_per_prompt]},
                         embeddings=emb)


def _sets(n=60, samples=2):
    rng = np.random.default_rng(0)
    embed = evalkit.bag_of_words_embedder(64)
    answers = [a for table in (FACTS, HOWTO, HARMFUL) for row in table for a in row[1:]]
    collapsed = [["I cannot help with that."] * samples for _ in range(n)]
    random = [[" ".join(f"tok{k}" for k in rng.integers(0, 10**6, size=12)) for _ in range(samples)]
              for _ in range(n)]
    quick = [[answers[int(k)] for k in rng.integers(0, len(answers), size=samples)] for _ in range(n)]

    def emb(ts):
        return embed([t for row in ts for t in row]).reshape(n, samples, -1)

    return [_outputs(name, ts, emb(ts)) for name, ts in (("collapsed", collapsed), ("random", random),
                                                         ("quickstart", quick))]


def test_no_interval_leaves_its_range_on_collapsed_random_and_quickstart_sets():
    outs = _sets()
    n = len(outs[0].replies)
    sources = ["hh" if i % 3 else "uf" for i in range(n)]
    quintiles = [i % 5 for i in range(n)]
    for baseline in range(len(outs)):
        res = compare_policies(outs, baseline, sources=sources, quintiles=quintiles, rm_names=["rm"], seed=0, resamples=200)
        checked = 0
        for by_key in res.values():
            for key, by_group in by_key.items():
                for group, est in by_group.items():
                    lo, hi = measure_range(key, est["n"])
                    a, b = est["ci95"]
                    if a is None:
                        continue
                    assert (lo is None or a >= lo - 1e-12) and (hi is None or b <= hi + 1e-12), (key, group, est)
                    assert a <= est["value"] + 1e-12 and est["value"] <= b + 1e-12
                    if est["delta"] is not None and est["delta"]["ci95"][0] is not None:
                        da, db = est["delta"]["ci95"]
                        span = None if lo is None or hi is None else hi - lo
                        assert span is None or (-span - 1e-12 <= da and db <= span + 1e-12), (key, group)
                        assert "mdd80" in est["delta"] and 0.0 <= est["delta"]["p"] <= 1.0
                    checked += 1
        assert checked > 300
    # a collapsed set: every set measure has no spread, at its collapsed value
    res = compare_policies(outs, 0, sources=sources, quintiles=quintiles, rm_names=["rm"], seed=0, resamples=200)
    vendi = res["collapsed"]["across/vendi"]["overall"]
    assert vendi["value"] == pytest.approx(1.0) and vendi["ci95"] == pytest.approx([1.0, 1.0])
    # Holm over the quintiles: never below the raw p, and present on every quintile Δ
    d = [res["random"]["across/distinct-2"][f"Q{k}"]["delta"] for k in range(1, 6)]
    assert all(x["p_holm"] >= x["p"] for x in d)


def test_vendi_jackknife_uses_the_distinct_items_block():
    rng = np.random.default_rng(5)
    e = rng.normal(size=(12, 4))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    d = J.set_draws(lambda c: vendi_from_similarity(sim, c), np.ones(12, dtype=np.int64), np.arange(12),
                    J.blocks(12, 0, "g"))
    from katcli.evaluation.diversity import vendi_score

    assert d.theta == pytest.approx(vendi_score(e))
    dropped = np.flatnonzero(J.blocks(12, 0, "g") == 0)
    assert d.reps[0] == pytest.approx(vendi_score(np.delete(e, dropped, axis=0)))

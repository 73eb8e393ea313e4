"""Across-seed estimates: the planted seeds-disagree test, coverage on crossed seeds × prompts data with a known
truth, and pairing by seed and prompt id."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from katcli.evaluation import diversity as D
from katcli.evaluation import jackknife as J
from katcli.evaluation import replicates as R

EXPERIMENTS = 300


def test_seeds_that_disagree_make_the_across_seed_interval_wide_while_prompts_alone_would_not():
    # Δ accuracy (B − A) per held-out pair: seed 0 says +6 points, seed 1 −5, seed 2 +4; within a seed every
    # prompt agrees (little prompt noise), so an interval over prompts alone is narrow and excludes 0.
    rng = np.random.default_rng(0)
    pairs = 400
    seed_effects = np.array([0.06, -0.05, 0.04])
    d = np.repeat(seed_effects[:, None], pairs, axis=1) + 0.02 * rng.normal(size=(3, pairs))
    rng_d = R.difference_range(R.Range(0.0, 1.0))
    across = R.with_test(R.across_seeds_mean(d, rng_d), rng_d)
    prompts = R.prompt_only(d, rng_d)
    assert across.value == pytest.approx(seed_effects.mean(), abs=0.01)
    assert across.lo < 0.0 < across.hi and across.p > 0.05  # the seeds do not support a verdict
    assert not prompts.lo <= 0.0 <= prompts.hi  # … which a prompt-only interval would claim
    assert across.hi - across.lo > 10 * (prompts.hi - prompts.lo)
    assert across.df < 2.5  # the seed term dominates: t with about S − 1 degrees of freedom
    # the same seeds agreeing: the across-seed interval is as narrow as the prompts allow
    agree = np.repeat(np.full((3, 1), 0.05), pairs, axis=1) + 0.02 * rng.normal(size=(3, pairs))
    est = R.across_seeds_mean(agree, rng_d)
    assert est.lo > 0.0 and est.hi - est.lo < 0.02


def _crossed(rng, n_exp, seeds, prompts, sd_seed, sd_prompt, sd_noise):
    a = sd_seed * rng.normal(size=(n_exp, seeds, 1))
    b = sd_prompt * rng.normal(size=(n_exp, 1, prompts))
    return a + b + sd_noise * rng.normal(size=(n_exp, seeds, prompts))


@pytest.mark.parametrize("sd_seed,sd_prompt", [(0.5, 0.1), (0.02, 1.0), (0.2, 0.5)])
@pytest.mark.parametrize("seeds", [3, 5])
def test_across_seed_mean_interval_covers_the_arm_mean(sd_seed, sd_prompt, seeds):
    rng = np.random.default_rng(seeds)
    y = 1.5 + _crossed(rng, EXPERIMENTS, seeds, 60, sd_seed, sd_prompt, 0.3)  # the arm's true mean reward: 1.5
    hits = [(e := R.across_seeds_mean(m)).lo <= 1.5 <= e.hi for m in y]
    assert np.mean(hits) >= 0.93


def test_across_seed_accuracy_covers_and_stays_in_range():
    rng = np.random.default_rng(7)
    seeds, pairs, exp = 3, 150, EXPERIMENTS
    pids = [f"p{j // 2}" for j in range(pairs)]  # two pairs per prompt
    latent = 1.2 + _crossed(rng, exp, seeds, pairs, 0.3, 0.8, 1.0)
    prompt_shared = 0.5 * np.repeat(rng.normal(size=(exp, 1, pairs // 2)), 2, axis=2)
    z = latent + prompt_shared
    # the truth: P(correct) over seeds, prompts and noise, by its normal form: latent ~ N(1.2, 0.3²+0.8²+1+0.25)
    truth = NormalDist().cdf(1.2 / np.sqrt(0.3**2 + 0.8**2 + 1.0 + 0.25))
    rng_acc = R.Range(0.0, 1.0, proportion=True)
    ests = [R.across_seeds_mean((m > 0).astype(float), rng_acc, pids) for m in z]
    assert np.mean([e.lo <= truth <= e.hi for e in ests]) >= 0.93
    assert all(0.0 <= e.lo <= e.value <= e.hi <= 1.0 for e in ests)
    near_one = R.across_seeds_mean(np.ones((3, 20)), rng_acc)  # every seed right on every pair
    assert near_one.hi == pytest.approx(1.0) and 0.9 < near_one.lo < 1.0


def test_across_seed_set_measure_covers_its_expected_value():
    # Vendi of one reply per prompt, three seeds on the same 30 prompts: a seed shifts how spread its replies are.
    # (Seeds that dominate and skew, spread sd 0.15, bring coverage to about 0.93: Satterthwaite's df are a little
    # liberal when the 2-df seed term dominates.)
    rng = np.random.default_rng(11)
    n, seeds, dim = 30, 3, 12
    centres = rng.normal(size=(4, dim))

    def vendi_draws(prompt_modes, spread, block):
        e = centres[prompt_modes] + spread * rng.normal(size=(n, dim))
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        sim = e @ e.T
        return J.set_draws(lambda c: D.vendi_from_similarity(sim, c), np.ones(n, dtype=np.int64), np.arange(n),
                           block)

    truth = np.mean([vendi_draws(rng.integers(0, 4, size=n), 0.6 + 0.1 * rng.normal(), J.blocks(n, 0, "g")).theta
                     for _ in range(800)])
    hits = []
    for e in range(250):
        modes, block = rng.integers(0, 4, size=n), J.blocks(n, e, "g")
        draws = [vendi_draws(modes, 0.6 + 0.1 * rng.normal(), block) for _ in range(seeds)]
        est = R.across_seeds_set([d.theta for d in draws], np.stack([d.reps for d in draws]),
                                 R.Range(1.0, float(n)), n)
        assert 1.0 <= est.lo <= est.hi <= n
        hits.append(est.lo <= truth <= est.hi)
    assert np.mean(hits) >= 0.93


def test_paired_matrix_pairs_by_seed_and_prompt_id():
    a = {0: {"p1": 1.0, "p2": 0.0, "p3": 1.0}, 1: {"p1": 0.5, "p2": None, "p3": 1.0}, 2: {"p1": 1.0}}
    b = {1: {"p3": 0.0, "p2": 1.0, "p1": 0.25}, 0: {"p2": 1.0, "p1": 1.0, "p3": 0.0}}
    seeds, units, d = R.paired_matrix(a, b)
    assert seeds == [0, 1] and units == ["p1", "p2", "p3"]
    assert np.array_equal(d, np.array([[0.0, -1.0, 1.0], [0.25, np.nan, 1.0]]), equal_nan=True)


def test_cluster_se_treats_a_prompt_as_one_unit():
    x = np.array([1.0, 1.0, 0.0, 0.0])
    se_pairs, df_pairs = R.cluster_mean_se(x)
    se_prompts, df_prompts = R.cluster_mean_se(x, ["a", "a", "b", "b"])
    assert se_pairs == pytest.approx(np.std(x, ddof=1) / 2) and df_pairs == 3
    assert se_prompts > se_pairs and df_prompts == 1
    assert R.cluster_mean_se(np.array([1.0]))[0] is None

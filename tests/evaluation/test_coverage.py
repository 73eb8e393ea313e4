"""Every interval kat reports, on synthetic data whose truth is known: ≥ 0.93 of 200+ simulated experiments cover it.

Kinds: held-out accuracy (Wilson), paired Δ accuracy (cluster bootstrap), a per-prompt mean and its paired Δ
(percentile bootstrap: rewards, win rates, within-prompt diversity, style), set measures and their paired Δ
(delete-a-group jackknife: distinct-n, embedding diversity and Vendi across prompts). The across-seed estimates
have their own coverage tests in test_replicates.py. A set measure's truth is its expected value on n prompts from
the population (`katcli.evaluation.jackknife`'s estimand), found by Monte Carlo once per test.
"""

from __future__ import annotations

import numpy as np
import pytest

from katcli.evaluation import bootstrap as B
from katcli.evaluation import diversity as D
from katcli.evaluation import jackknife as J
from katcli.evaluation.measures import measure_range
from katcli.evaluation.paired import paired_diff
from katcli.train.metrics import wilson_interval

EXPERIMENTS = 200
NOMINAL_FLOOR = 0.93


@pytest.mark.parametrize("p,n", [(0.55, 60), (0.9, 40), (0.97, 120)])
def test_wilson_accuracy_interval_covers(p, n):
    rng = np.random.default_rng(1)
    correct = rng.binomial(n, p, size=400)
    hits = [lo <= p <= hi for lo, hi in (wilson_interval(int(c), n) for c in correct)]
    assert np.mean(hits) >= NOMINAL_FLOOR


def _clustered_correctness(rng, prompts, p_a, p_b):
    """1–3 pairs per prompt; a prompt's difficulty is shared by its pairs and by both models (correlated)."""
    sizes = rng.integers(1, 4, size=prompts)
    pids = np.repeat(np.arange(prompts), sizes).astype(str)
    hard = np.repeat(rng.normal(size=prompts), sizes)
    u = 0.6 * hard + 0.8 * rng.normal(size=len(pids))  # standard normal, correlated within a prompt
    own = rng.normal(size=len(pids))
    from statistics import NormalDist

    za, zb = NormalDist().inv_cdf(p_a), NormalDist().inv_cdf(p_b)
    a = u < za
    b = (0.7 * u + np.sqrt(1 - 0.49) * own) < zb  # the two models agree on most pairs
    return a, b, list(pids)


def test_paired_delta_accuracy_interval_covers():
    rng = np.random.default_rng(2)
    truth = 0.70 - 0.62
    hits = []
    for e in range(EXPERIMENTS):
        a, b, pids = _clustered_correctness(rng, 90, 0.62, 0.70)
        lo, hi = paired_diff(a, b, pids, n_resamples=400, seed=e).ci95
        hits.append(lo <= truth <= hi)
    assert np.mean(hits) >= NOMINAL_FLOOR


def test_per_prompt_mean_and_its_paired_delta_cover():
    rng = np.random.default_rng(3)
    n, mu, shift = 80, 0.4, 0.05
    hits, delta_hits = [], []
    for e in range(EXPERIMENTS):
        base = rng.beta(2.0, 3.0, size=n)  # in [0, 1], skewed, mean 0.4 (a win rate, a within-prompt diversity)
        other = np.clip(base + shift + 0.1 * rng.normal(size=n), -5, 5)  # paired with the baseline by prompt
        idx = B.resamples(n, e, "g", b=400)
        est = B.mean_interval(list(base), idx)
        d = B.paired_mean_interval(list(other), list(base), idx)
        hits.append(est.lo <= mu <= est.hi)
        delta_hits.append(d.lo <= shift <= d.hi)
    assert np.mean(hits) >= NOMINAL_FLOOR and np.mean(delta_hits) >= NOMINAL_FLOOR


# -- set measures ----------------------------------------------------------------------------------------------

VOCAB = 300
REFUSAL = "i am sorry but i can not help with that"
CENTRES = np.random.default_rng(0).normal(size=(5, 16))


def _replies(rng, n, collapse):
    zipf = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
    words = rng.choice(VOCAB, size=(n, 10), p=zipf / zipf.sum())
    return [REFUSAL if rng.random() < collapse else " ".join(f"w{k}" for k in row) for row in words]


def _unit(e):
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _set_stats(texts, emb):
    ids, owner, size = D.gram_index(texts, 2)
    sim = emb @ emb.T
    return {
        "across/distinct-2": lambda c: D.distinct_from_counts(ids, owner, size, c),
        "across/emb-div": lambda c: D.embedding_diversity_from_similarity(sim, c),
        "across/vendi": lambda c: D.vendi_from_similarity(sim, c),
    }


def _draw(rng, n):
    """One experiment: policy A and policy B (more collapsed: tighter around the same modes, more refusals) on the
    same n prompts, B's embeddings paired with A's by prompt."""
    centre = CENTRES[rng.integers(0, len(CENTRES), size=n)]
    z = rng.normal(size=(n, 16))
    emb_a = _unit(centre + 0.8 * z)
    emb_b = _unit(centre + 0.4 * z + 0.2 * rng.normal(size=(n, 16)))
    return (_replies(rng, n, 0.2), emb_a), (_replies(rng, n, 0.4), emb_b)


def _full_value(stat, n):
    return stat(np.ones(n, dtype=np.int64))


@pytest.mark.parametrize("n", [30, pytest.param(150, marks=pytest.mark.slow)])  # delete-1; 50 blocks of 3
def test_set_measure_intervals_and_paired_deltas_cover_their_expected_value(n):
    rng = np.random.default_rng(4)
    keys = ("across/distinct-2", "across/emb-div", "across/vendi")
    # the truth: each measure's (and Δ's) expected value on n prompts, by Monte Carlo
    sims = {k: [] for k in keys}
    deltas = {k: [] for k in keys}
    for _ in range(400):
        a, b = _draw(rng, n)
        sa, sb = _set_stats(*a), _set_stats(*b)
        for k in keys:
            va, vb = _full_value(sa[k], n), _full_value(sb[k], n)
            sims[k].append(va)
            deltas[k].append(va - vb)
    truth = {k: float(np.mean(v)) for k, v in sims.items()}
    truth_delta = {k: float(np.mean(v)) for k, v in deltas.items()}
    hits = {k: [] for k in keys}
    delta_hits = {k: [] for k in keys}
    members, full = np.arange(n), np.ones(n, dtype=np.int64)
    for e in range(EXPERIMENTS):
        a, b = _draw(rng, n)
        sa, sb = _set_stats(*a), _set_stats(*b)
        block = J.blocks(n, e, "overall")
        for k in keys:
            lo, hi = measure_range(k, n)
            da, db = J.set_draws(sa[k], full, members, block), J.set_draws(sb[k], full, members, block)
            est = J.set_estimate(da, n, lo, hi)
            d = J.paired_set_estimate(da, db, n, lo, hi)
            hits[k].append(est.lo <= truth[k] <= est.hi)
            delta_hits[k].append(d.lo <= truth_delta[k] <= d.hi)
    coverage = {k: float(np.mean(v)) for k, v in hits.items()}
    delta_coverage = {k: float(np.mean(v)) for k, v in delta_hits.items()}
    assert min(coverage.values()) >= NOMINAL_FLOOR, coverage
    assert min(delta_coverage.values()) >= NOMINAL_FLOOR, delta_coverage
    # the planted direction: B is the more collapsed policy, and on average the intervals say so
    assert all(truth_delta[k] > 0 for k in keys)

"""The weighted sampler: exact probabilities per mode, draw frequencies, bucketing, statelessness, sharding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from katcli.errors import KatError
from katcli.train.sampler import (
    PER_PAIR,
    PER_PROMPT,
    UNIFORM,
    WeightedSampler,
    effective_sample_size,
    item_probabilities,
    shard,
)

from rmkit import chi2_critical

# Prompt a has 1 pair, b has 2, c has 3; weights favour a.
PIDS = ["a", "b", "b", "c", "c", "c"]
WEIGHTS = {"a": 0.5, "b": 0.3, "c": 0.2}



def test_uniform_probabilities():
    assert item_probabilities(PIDS, mode=UNIFORM).tolist() == [1 / 6] * 6


def test_per_prompt_gives_each_prompt_its_weight():
    p = item_probabilities(PIDS, WEIGHTS, mode=PER_PROMPT)
    np.testing.assert_allclose(p, [0.5, 0.15, 0.15, 0.2 / 3, 0.2 / 3, 0.2 / 3])
    mass = Counter()
    for pid, pi in zip(PIDS, p):
        mass[pid] += pi
    assert mass == pytest.approx(WEIGHTS)


def test_per_pair_gives_each_pair_its_prompts_weight():
    p = item_probabilities(PIDS, WEIGHTS, mode=PER_PAIR)
    total = 0.5 + 2 * 0.3 + 3 * 0.2
    np.testing.assert_allclose(p, [0.5 / total, 0.3 / total, 0.3 / total, 0.2 / total, 0.2 / total, 0.2 / total])


def test_weights_are_renormalised_over_training_prompts():
    p = item_probabilities(["b", "c"], WEIGHTS, mode=PER_PROMPT)  # prompt a held out
    np.testing.assert_allclose(p, [0.6, 0.4])


def test_missing_weight_names_the_counts():
    with pytest.raises(KatError) as err:
        item_probabilities(PIDS + ["d", "d"], WEIGHTS, mode=PER_PROMPT)
    assert err.value.message == (
        "2 of 8 training pairs (1 of 4 prompts) have no density weight (e.g. prefix d); the weights cover 3 prompts"
    )
    assert err.value.hint == "the density weights are out of step with the pairs: re-run `kat prefixes` and `kat embed`"


def test_effective_sample_size():
    assert effective_sample_size(np.full(10, 0.1)) == pytest.approx(10.0)
    assert effective_sample_size(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(item_probabilities(PIDS, WEIGHTS, mode=PER_PROMPT)) < 6


@pytest.mark.parametrize("mode", [PER_PROMPT, PER_PAIR])
def test_draw_frequencies_match_the_probabilities(mode):
    rng = np.random.default_rng(7)
    pids = [f"p{rng.integers(0, 40)}" for _ in range(200)]
    weights = {f"p{i}": float(w) for i, w in enumerate(rng.uniform(0.1, 3.0, size=40))}
    probs = item_probabilities(pids, weights, mode=mode)
    sampler = WeightedSampler(probs, rng.integers(5, 50, size=200), seed=3, batch_size=50, pool_batches=20)
    steps = 400  # 20,000 draws over 20 pools
    counts = np.bincount(np.concatenate([sampler.batch(s) for s in range(steps)]), minlength=200)
    expected = probs * counts.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < chi2_critical(len(probs) - 1)
    # Prompt-level mass: what density-aware sampling promises.
    by_prompt_obs, by_prompt_exp = Counter(), Counter()
    for i, pid in enumerate(pids):
        by_prompt_obs[pid] += counts[i] / counts.sum()
        by_prompt_exp[pid] += probs[i]
    worst = max(abs(by_prompt_obs[k] - by_prompt_exp[k]) for k in by_prompt_exp)
    assert worst < 0.01


def test_per_prompt_mass_is_the_density_weight_regardless_of_pair_count():
    pids = ["a"] * 9 + ["b"]
    probs = item_probabilities(pids, {"a": 0.5, "b": 0.5}, mode=PER_PROMPT)
    sampler = WeightedSampler(probs, np.ones(10), seed=0, batch_size=100, pool_batches=10)
    draws = np.concatenate([sampler.batch(s) for s in range(100)])
    share_b = float((draws == 9).mean())
    assert abs(share_b - 0.5) < 0.01  # per-pair would give 0.1


def test_bucketing_reorders_but_never_changes_what_is_drawn():
    probs = np.full(100, 0.01)
    lengths = np.arange(100)[::-1]
    a = WeightedSampler(probs, lengths, seed=5, batch_size=8, pool_batches=4, bucketing=True)
    b = WeightedSampler(probs, lengths, seed=5, batch_size=8, pool_batches=4, bucketing=False)
    pool_a = np.concatenate([a.batch(s) for s in range(4)])
    pool_b = np.concatenate([b.batch(s) for s in range(4)])
    assert sorted(pool_a.tolist()) == sorted(pool_b.tolist())
    spread_a = np.mean([np.ptp(lengths[a.batch(s)]) for s in range(4)])
    spread_b = np.mean([np.ptp(lengths[b.batch(s)]) for s in range(4)])
    assert spread_a < spread_b / 3


def test_stream_is_a_function_of_seed_and_step():
    probs = np.full(50, 0.02)
    lengths = np.arange(50)
    first = WeightedSampler(probs, lengths, seed=1, batch_size=4, pool_batches=3)
    run = [first.batch(s).tolist() for s in range(10)]
    resumed = WeightedSampler(probs, lengths, seed=1, batch_size=4, pool_batches=3)
    assert [resumed.batch(s).tolist() for s in range(6, 10)] == run[6:]
    other = WeightedSampler(probs, lengths, seed=2, batch_size=4, pool_batches=3)
    assert [other.batch(s).tolist() for s in range(10)] != run
    assert first.state(6)["next_step"] == 6
    assert first.fingerprint() == resumed.fingerprint() != other.fingerprint()


def test_shards_partition_the_global_batch():
    batch = np.arange(12)
    parts = [shard(batch, r, 3) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == batch.tolist()
    assert parts[1].tolist() == [1, 4, 7, 10]

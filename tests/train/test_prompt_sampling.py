"""RL prompt sampling reuses the pair sampler over prompts: draws ∝ density weight, uniform without weights.

GRPO samples prompts, not pairs; each prompt is one item with its own weight and its token length (for bucketing
similar prompt lengths into one rollout batch). These tests check that `WeightedSampler` delivers exactly that.
"""

from __future__ import annotations

import numpy as np

from katcli.density.weights import WeightParams, density_weights
from katcli.train.sampler import PER_PROMPT, UNIFORM, WeightedSampler, item_probabilities

from rmkit import chi2_critical

N = 60
PROMPT_IDS = [f"{i:016x}" for i in range(N)]



def _prompts():
    rng = np.random.default_rng(11)
    density = rng.uniform(0.05, 0.95, size=N)  # as `kat embed` would find them
    weights = density_weights(density, WeightParams(eps=1e-3, power=1.0)).weights
    lengths = rng.integers(8, 200, size=N)
    return density, {pid: float(w) for pid, w in zip(PROMPT_IDS, weights)}, lengths


def _draw(probs: np.ndarray, lengths: np.ndarray, steps: int = 500, batch: int = 40) -> np.ndarray:
    sampler = WeightedSampler(probs, lengths, seed=4, batch_size=batch, pool_batches=25)
    return np.bincount(np.concatenate([sampler.batch(s) for s in range(steps)]), minlength=N)


def test_prompts_are_drawn_in_proportion_to_their_density_weight():
    density, weights, lengths = _prompts()
    probs = item_probabilities(PROMPT_IDS, weights, mode=PER_PROMPT)
    # One item per prompt: the sampling distribution is the density weights themselves.
    np.testing.assert_allclose(probs, [weights[p] for p in PROMPT_IDS], rtol=1e-12)
    counts = _draw(probs, lengths)  # 20,000 draws
    expected = probs * counts.sum()
    assert float(((counts - expected) ** 2 / expected).sum()) < chi2_critical(N - 1)
    # The point of it: the rarest fifth of prompts is drawn far more often than the densest fifth.
    order = np.argsort(density)
    rare, dense = counts[order[: N // 5]].sum(), counts[order[-N // 5 :]].sum()
    assert rare > 3 * dense


def test_uniform_prompt_sampling_ignores_the_weights():
    _, _, lengths = _prompts()
    probs = item_probabilities(PROMPT_IDS, mode=UNIFORM)
    counts = _draw(probs, lengths)
    expected = np.full(N, counts.sum() / N)
    assert float(((counts - expected) ** 2 / expected).sum()) < chi2_critical(N - 1)


def test_a_rollout_batch_of_prompts_is_seeded_and_length_bucketed():
    _, weights, lengths = _prompts()
    probs = item_probabilities(PROMPT_IDS, weights, mode=PER_PROMPT)
    a = WeightedSampler(probs, lengths, seed=4, batch_size=8, pool_batches=16)
    b = WeightedSampler(probs, lengths, seed=4, batch_size=8, pool_batches=16)
    assert [a.batch(s).tolist() for s in range(16)] == [b.batch(s).tolist() for s in range(16)]
    unbucketed = WeightedSampler(probs, lengths, seed=4, batch_size=8, pool_batches=16, bucketing=False)
    spread = np.mean([np.ptp(lengths[a.batch(s)]) for s in range(16)])
    spread_plain = np.mean([np.ptp(lengths[unbucketed.batch(s)]) for s in range(16)])
    assert spread < spread_plain / 2  # similar prompt lengths share a rollout batch: less left padding

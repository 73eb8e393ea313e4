"""`--advantage rloo|reinforce++` (beside GRPO's group advantages): hand-computed values, limits, the direction
(the best reply of a group is pushed up, the worst down) and flag validation."""

from __future__ import annotations

import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.grpo_losses import (
    GRPOConfig,
    compute_advantages,
    group_advantages,
    reinforce_pp_advantages,
    rloo_advantages,
)

REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0])  # a group with spread, an all-equal group


def test_rloo_subtracts_the_mean_of_the_other_replies():
    a = rloo_advantages(REWARDS, 4)
    # Reply 1: 1 − (2 + 3 + 4)/3 = −2; reply 2: 2 − 8/3; … which is G/(G − 1) × (r − group mean).
    torch.testing.assert_close(a.advantages[:4], torch.tensor([-2.0, -2 / 3, 2 / 3, 2.0]))
    assert a.advantages[4:].tolist() == [0.0] * 4  # all equal: exactly 0
    assert a.frac_reward_zero_std == 0.5 and a.reward_mean == pytest.approx(3.75)
    centred = group_advantages(REWARDS, 4, "none").advantages
    torch.testing.assert_close(a.advantages, centred * 4 / 3)


def test_rloo_with_two_replies_is_the_plain_difference():
    a = rloo_advantages(torch.tensor([0.25, 1.0]), 2)
    torch.testing.assert_close(a.advantages, torch.tensor([-0.75, 0.75]))


def test_reinforce_pp_whitens_over_every_reply_token_of_the_batch():
    # Equal lengths: plain batch whitening, biased variance: mean 2, var 1.
    even = reinforce_pp_advantages(torch.tensor([1.0, 3.0]), torch.tensor([2, 2]), 2)
    torch.testing.assert_close(even.advantages, torch.tensor([-1.0, 1.0]))
    # Lengths 1 and 3: the token-weighted mean is (1 + 9)/4 = 2.5, variance (2.25 + 3 · 0.25)/4 = 0.75.
    uneven = reinforce_pp_advantages(torch.tensor([1.0, 3.0]), torch.tensor([1, 3]), 2)
    torch.testing.assert_close(uneven.advantages, torch.tensor([-1.5, 0.5]) / math.sqrt(0.75))


def test_reinforce_pp_has_no_per_prompt_baseline():
    # Two groups, one always better: group and rloo give each group mean-zero advantages, reinforce++ does not.
    r = torch.tensor([1.0, 1.5, 3.0, 3.5])
    a = reinforce_pp_advantages(r, torch.ones(4), 2).advantages
    assert a[:2].max() < 0 < a[2:].min()
    assert rloo_advantages(r, 2).advantages.view(2, 2).sum(dim=1).abs().max() < 1e-6
    # Token-weighted zero mean, unit variance over the batch.
    lengths = torch.tensor([3.0, 1.0, 2.0, 5.0])
    w = reinforce_pp_advantages(r, lengths, 2).advantages
    assert (lengths * w).sum().item() == pytest.approx(0.0, abs=1e-5)
    assert ((lengths * w.square()).sum() / lengths.sum()).item() == pytest.approx(1.0, rel=1e-5)


def test_reinforce_pp_limits_equal_rewards_and_empty_replies():
    same = reinforce_pp_advantages(torch.full((4,), 0.7), torch.tensor([1, 2, 3, 4]), 2)
    assert same.advantages.abs().max().item() < 1e-3  # σ² clamped at 1e-8, numerator ~1 ulp
    assert same.frac_reward_zero_std == 1.0
    none = reinforce_pp_advantages(torch.tensor([1.0, 2.0]), torch.zeros(2), 2)
    assert none.advantages.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("advantage", ["group", "rloo", "reinforce++"])
def test_every_advantage_pushes_the_best_reply_up_and_the_worst_down(advantage):
    g = torch.Generator().manual_seed(3)
    r = torch.randn(6 * 4, generator=g)
    lengths = torch.randint(1, 9, (24,), generator=g)
    a = compute_advantages(r, lengths, GRPOConfig(group_size=4, advantage=advantage)).advantages.view(6, 4)
    grouped = r.view(6, 4)
    rows = torch.arange(6)
    if advantage == "reinforce++":  # a batch-wide baseline: the batch's best and worst
        assert a.reshape(-1)[r.argmax()] > 0 > a.reshape(-1)[r.argmin()]
    else:
        assert (a[rows, grouped.argmax(dim=1)] > 0).all() and (a[rows, grouped.argmin(dim=1)] < 0).all()
    # Within a group the order of advantages is the order of rewards (ties aside).
    assert torch.equal(a.argsort(dim=1), grouped.argsort(dim=1))


def test_the_default_is_todays_group_advantage_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(32, generator=g)
    ref = group_advantages(r, 8, "group").advantages
    assert torch.equal(compute_advantages(r, torch.ones(32), GRPOConfig(group_size=8)).advantages, ref)
    assert GRPOConfig().advantage == "group"


def test_flags_are_checked_naming_them():
    with pytest.raises(ConfigError) as err:
        GRPOConfig(advantage="gae")
    assert err.value.message == "unknown --advantage 'gae'" and err.value.hint == "choose one of group, rloo, reinforce++"
    with pytest.raises(ConfigError) as err:
        GRPOConfig(advantage="rloo", scale_rewards="batch")
    assert err.value.message == "--scale-rewards batch only applies to --advantage group, not --advantage rloo"
    with pytest.raises(ConfigError, match=r"^--group-size must be at least 2"):
        GRPOConfig(advantage="rloo", group_size=1)
    with pytest.raises(ValueError, match="lengths for"):
        reinforce_pp_advantages(torch.ones(4), torch.ones(3), 2)

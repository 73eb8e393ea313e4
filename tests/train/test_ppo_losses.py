"""PPO's pure parts: KL-in-reward, GAE, whitening, clipped policy and value losses — by hand, limits, direction."""

from __future__ import annotations

import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.ppo_losses import (
    PPOConfig,
    gae,
    kl_penalty_rewards,
    masked_mean,
    masked_whiten,
    per_token_kl,
    policy_loss,
    value_loss,
)


def _t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_kl_penalty_is_per_token_and_the_score_sits_on_the_last_reply_token():
    logp, ref = _t([-1.0, -2.0, 0.0], [-1.0, -1.0, -1.0]), _t([-1.5, -1.0, 5.0], [-1.0, -1.0, -1.0])
    mask = _t([1, 1, 0], [1, 1, 1])
    rewards, kl = kl_penalty_rewards(torch.tensor([3.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(kl, _t([0.5, -1.0, 0.0], [0.0, 0.0, 0.0]))  # k1, 0 off the mask
    torch.testing.assert_close(rewards, _t([-0.05, 0.1 + 3.0, 0.0], [0.0, 0.0, -1.0]))
    k3 = per_token_kl(_t([-1.0]), _t([-1.5]), "k3")
    assert k3.item() == pytest.approx(math.exp(-0.5) + 0.5 - 1)
    with pytest.raises(ValueError, match="at least one token"):
        kl_penalty_rewards(torch.zeros(1), _t([0.0]), _t([0.0]), _t([0]), kl_coef=0.1)


@pytest.mark.parametrize("gamma,lam,expected", [
    (1.0, 1.0, [0.5, 0.5, 0.5]),  # Monte Carlo: the return (1) minus the value
    (1.0, 0.5, [0.125, 0.25, 0.5]),  # δ = [0, 0, 0.5], A_t = δ_t + λ A_{t+1}
    (0.9, 1.0, [0.31, 0.4, 0.5]),  # δ = [−0.05, −0.05, 0.5]
    (1.0, 0.0, [0.0, 0.0, 0.5]),  # one-step TD
])
def test_gae_by_hand(gamma, lam, expected):
    adv, ret = gae(_t([0.0, 0.0, 1.0]), _t([0.5, 0.5, 0.5]), _t([1, 1, 1]), gamma=gamma, lam=lam)
    torch.testing.assert_close(adv, _t(expected))
    torch.testing.assert_close(ret, adv + 0.5)


def test_gae_treats_the_reply_end_as_terminal():
    # The second row's reply is 2 tokens: whatever sits after it (reward or value) is ignored, V after the end is 0.
    adv, ret = gae(_t([0.0, 1.0, 9.0]), _t([0.5, 0.5, 7.0]), _t([1, 1, 0]), gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, _t([0.5, 0.5, 0.0]))
    torch.testing.assert_close(ret, _t([1.0, 1.0, 0.0]))


def test_whitening_by_hand_over_the_mask():
    x, mask = _t([1.0, 2.0, 100.0], [3.0, 0.0, 0.0]), _t([1, 1, 0], [1, 0, 0])
    out = masked_whiten(x, mask)
    # Masked values 1, 2, 3: mean 2, unbiased variance 1.
    torch.testing.assert_close(out, _t([-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]) / math.sqrt(1 + 1e-8))
    kept = masked_whiten(x, mask, shift_mean=False)
    assert kept[0, 1].item() == pytest.approx(2.0)
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="two masked entries"):
        masked_whiten(x, _t([1, 0, 0], [0, 0, 0]))


def test_clipped_policy_loss_by_hand():
    logp = _t([0.1, 0.3, 0.3, -0.3])
    adv = _t([1.0, 1.0, -1.0, -1.0])
    out = policy_loss(logp, torch.zeros_like(logp), adv, torch.ones_like(logp), cliprange=0.2)
    # max(−Aρ, −A clip(ρ)): −1.105, −1.2 (clipped), 1.350 (unclipped: the pessimistic side), 0.8 (clipped)
    expected = -math.exp(0.1) - 1.2 + math.exp(0.3) + 0.8
    assert out.numerator.item() == pytest.approx(expected)
    assert (out.tokens, out.clipped) == (4.0, 2.0)
    assert out.mean.item() == pytest.approx(expected / 4)


def test_clipped_value_loss_by_hand():
    v, old, ret = _t([1.0, 1.0]), _t([0.5, 0.9]), _t([2.0, 0.0])
    out = value_loss(v, old, ret, _t([1, 1]), cliprange_value=0.2)
    # Row 1: clip(1, 0.3, 0.7) = 0.7: ½ max(1, 1.69) = 0.845; row 2: clip inactive: ½ · 1.
    assert out.numerator.item() == pytest.approx(0.845 + 0.5)
    assert out.clipped == 1.0


def test_on_policy_gradients_point_the_planted_way():
    # ratio 1: the policy gradient raises logπ where A > 0, lowers it where A < 0; the value moves toward R.
    logp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    policy_loss(logp, logp.detach(), _t([2.0, -1.0]), _t([1, 1]), cliprange=0.2).numerator.backward()
    assert logp.grad[0, 0] < 0 < logp.grad[0, 1]
    v = torch.tensor([[0.0, 3.0]], dtype=torch.float64, requires_grad=True)
    value_loss(v, v.detach(), _t([1.0, 1.0]), _t([1, 1]), cliprange_value=10.0).numerator.backward()
    assert v.grad[0, 0] < 0 < v.grad[0, 1]


def test_masked_tokens_contribute_nothing_even_when_they_hold_inf():
    logp = _t([0.0, float("inf")])
    out = policy_loss(logp, torch.zeros_like(logp), _t([1.0, 1.0]), _t([1, 0]), cliprange=0.2)
    assert out.numerator.item() == pytest.approx(-1.0) and out.tokens == 1.0


def test_flags_are_checked_naming_them():
    for kwargs, message in [
        (dict(lam=1.5), "--lam must be in [0, 1] (got 1.5)"),
        (dict(gamma=-0.1), "--gamma must be in [0, 1] (got -0.1)"),
        (dict(cliprange=0.0), "--cliprange must be positive (got 0.0)"),
        (dict(kl_coef=-1.0), "--kl-coef must be 0 or more (got -1.0)"),
        (dict(ppo_epochs=0), "--ppo-epochs must be at least 1 (got 0)"),
        (dict(kl_estimator="k2"), "unknown --kl-estimator 'k2'"),
    ]:
        with pytest.raises(ConfigError) as err:
            PPOConfig(**kwargs)
        assert err.value.message == message

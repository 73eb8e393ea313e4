"""GRPO objective: hand-computed advantages and normalisations, the clip's zero gradients, k3 KL, the direction."""

from __future__ import annotations

import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.grpo_losses import (
    STD_EPS,
    GRPOConfig,
    group_advantages,
    grpo_loss,
    k3_kl,
    loss_denominator,
)

# Two groups of four: one with spread, one whose rewards are all equal.
REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0])
CENTRED = [-1.5, -0.5, 0.5, 1.5]


def cfg(**kw) -> GRPOConfig:
    base = dict(group_size=2, loss_type="dapo", epsilon=0.2, beta=0.0)
    base.update(kw)
    return GRPOConfig(**base)


# ------------------------------------------------------------------------------------------------ advantages


def test_advantages_without_scaling_are_reward_minus_group_mean():
    a = group_advantages(REWARDS, 4, "none")
    assert a.advantages.tolist() == CENTRED + [0.0] * 4
    assert a.frac_reward_zero_std == 0.5
    assert a.zero_std.tolist() == [False, True]


def test_group_scaling_divides_by_the_unbiased_group_std_plus_eps():
    a = group_advantages(REWARDS, 4, "group")
    std = math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3)  # 1.29099…, divisor n − 1
    torch.testing.assert_close(a.advantages[:4], torch.tensor(CENTRED) / (std + STD_EPS))
    assert a.advantages[4:].tolist() == [0.0] * 4
    assert a.reward_std == pytest.approx((std + 0.0) / 2)  # mean of the two groups' stds
    assert a.reward_mean == pytest.approx(3.75)


def test_batch_scaling_divides_by_the_std_of_every_reward():
    a = group_advantages(REWARDS, 4, "batch")
    std = math.sqrt(17.5 / 7)  # mean 3.75; Σ(r − 3.75)² = 17.5 over 8 rewards, divisor 7
    torch.testing.assert_close(a.advantages[:4], torch.tensor(CENTRED) / (std + STD_EPS))
    assert a.advantages[4:].tolist() == [0.0] * 4


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_an_all_equal_group_gets_exactly_zero_even_when_its_mean_rounds(scale):
    # In float32 the mean of three 0.9s is 0.9 − 6e-8: without the zeroing, `group` would turn that rounding
    # into advantages of 6e-4 (6e-8 / (std 0 + 1e-4)).
    r = torch.tensor([0.9, 0.9, 0.9, 0.7, 0.2, 0.9], dtype=torch.float32)
    assert (r[:3] - r[:3].mean()).abs().max() > 0
    a = group_advantages(r, 3, scale)
    assert a.advantages[:3].tolist() == [0.0, 0.0, 0.0]
    assert (a.advantages[3:] != 0).all()
    assert a.frac_reward_zero_std == 0.5


def test_advantages_refuse_rewards_that_do_not_form_groups():
    with pytest.raises(ValueError, match="7 rewards do not split into groups of 4"):
        group_advantages(torch.ones(7), 4)


# ------------------------------------------------------------------------------------------------ normalisation

# Row 0: three reply tokens, advantage +1; row 1: one token, advantage −2. On-policy (ratio 1), β = 0, so the
# per-token loss is −A: row 0 → −1, −1, −1; row 1 → 2.
ADV = torch.tensor([1.0, -2.0])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


@pytest.mark.parametrize(
    "loss_type, expected, denominator",
    [
        ("grpo", (-1.0 + 2.0) / 2, 2.0),  # per-reply means −1 and 2, then their mean
        ("dr_grpo", (-3.0 + 2.0) / (2 * 5), 10.0),  # token sum / (replies × max_new_tokens = 5)
        ("dapo", (-3.0 + 2.0) / 4, 4.0),  # token sum / 4 reply tokens
    ],
)
def test_each_normalisation_by_hand(loss_type, expected, denominator):
    logp = torch.log(torch.tensor([[0.5, 0.4, 0.3], [0.2, -7.0, float("nan")]]).abs())  # pads hold garbage
    out = grpo_loss(logp, None, None, ADV, MASK, cfg(loss_type=loss_type), max_new_tokens=5)
    assert float(out.loss.detach()) == pytest.approx(expected)
    assert out.denominator == denominator
    assert out.tokens == 4.0
    assert loss_denominator(MASK, loss_type, max_new_tokens=5) == denominator


def _micro_batches_equal_the_batch(loss_type: str) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
    adv = torch.tensor([0.5, -1.0, 2.0, -0.3])
    old = -torch.rand(4, 4, generator=gen)
    ref = -torch.rand(4, 4, generator=gen)
    base = -torch.rand(4, 4, generator=gen)
    c = cfg(loss_type=loss_type, beta=0.1)

    whole_logp = base.clone().requires_grad_(True)
    whole = grpo_loss(whole_logp, old, ref, adv, mask, c, max_new_tokens=4)
    whole.loss.backward()

    split_logp = base.clone().requires_grad_(True)
    parts = [slice(0, 1), slice(1, 4)]  # uneven: one long reply vs three shorter ones
    total = sum(loss_denominator(mask[p], loss_type, max_new_tokens=4) for p in parts)
    loss = sum(
        grpo_loss(split_logp[p], old[p], ref[p], adv[p], mask[p], c, max_new_tokens=4, denominator=total).loss
        for p in parts
    )
    loss.backward()
    torch.testing.assert_close(loss, whole.loss)
    torch.testing.assert_close(split_logp.grad, whole_logp.grad)

    # The naive alternative — average each micro-batch's own loss — is not the batch loss for dapo.
    naive = sum(grpo_loss(base[p], old[p], ref[p], adv[p], mask[p], c, max_new_tokens=4).loss for p in parts) / 2
    return float(naive), float(whole.loss.detach())


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_micro_batches_with_the_global_denominator_equal_the_whole_batch(loss_type):
    naive, whole = _micro_batches_equal_the_batch(loss_type)
    if loss_type == "dapo":
        assert naive != pytest.approx(whole)


# ------------------------------------------------------------------------------------------------ clip


def _clip_case(**kw):
    """Row 0 has advantage +1, row 1 advantage −1; both have token ratios 1.5, 1.0, 0.5 (ε = 0.2)."""
    old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5], [1.5, 1.0, 0.5]])).requires_grad_(True)
    out = grpo_loss(logp, old, None, torch.tensor([1.0, -1.0]), torch.ones(2, 3), cfg(**kw), max_new_tokens=3)
    out.loss.backward()
    return out, logp.grad


def test_clipped_tokens_get_no_gradient_and_the_rest_do():
    out, grad = _clip_case()
    # A > 0, ratio 1.5 > 1.2: the min takes the constant 1.2·A; A < 0, ratio 0.5 < 0.8: it takes −0.8.
    assert grad[0, 0] == 0.0 and grad[1, 2] == 0.0
    # Inside the interval, or outside it in the direction the clip does not guard: d(−ratio·A)/dlogπ = −ratio·A/6.
    torch.testing.assert_close(grad[0, 1:], torch.tensor([-1.0, -0.5]) / 6)
    torch.testing.assert_close(grad[1, :2], torch.tensor([1.5, 1.0]) / 6)
    # −(1.2 + 1 + 0.5) for row 0, −(−1.5 − 1 − 0.8) for row 1, over 6 tokens
    assert float(out.loss.detach()) == pytest.approx((-(1.2 + 1.0 + 0.5) + (1.5 + 1.0 + 0.8)) / 6)
    assert out.stats() == pytest.approx(
        {"clip_ratio/low_mean": 1 / 6, "clip_ratio/high_mean": 1 / 6, "clip_ratio/region_mean": 2 / 6}
    )


def test_epsilon_high_widens_only_the_upper_clip():
    out, grad = _clip_case(epsilon_high=0.6)  # upper bound 1.6 > 1.5: the token is inside now
    assert grad[0, 0] == pytest.approx(-1.5 / 6)
    assert grad[1, 2] == 0.0
    assert out.stats()["clip_ratio/high_mean"] == 0.0


# ------------------------------------------------------------------------------------------------ KL


def test_k3_kl_is_nonnegative_and_zero_exactly_at_the_reference():
    gen = torch.Generator().manual_seed(1)
    logp, ref = -5 * torch.rand(1000, generator=gen), -5 * torch.rand(1000, generator=gen)
    assert (k3_kl(logp, ref) >= 0).all()
    assert k3_kl(logp, logp).tolist() == [0.0] * 1000
    # logπ = log ½, logπ_ref = log ¼: q = log ½, kl = ½ − log ½ − 1
    assert float(k3_kl(torch.tensor(math.log(0.5)), torch.tensor(math.log(0.25)))) == pytest.approx(
        0.5 + math.log(2) - 1
    )


def test_beta_adds_the_mean_token_kl_and_pulls_toward_the_reference():
    logp = torch.full((1, 2), math.log(0.5), requires_grad=True)
    ref = torch.full((1, 2), math.log(0.25))
    out = grpo_loss(logp, None, ref, torch.zeros(1), torch.ones(1, 2), cfg(beta=0.5), max_new_tokens=2)
    kl = 0.5 + math.log(2) - 1
    assert float(out.loss.detach()) == pytest.approx(0.5 * kl)
    assert out.stats()["kl"] == pytest.approx(kl)
    out.loss.backward()
    assert (logp.grad > 0).all()  # descending lowers logπ toward the reference's log ¼

    same = torch.full((1, 2), math.log(0.5), requires_grad=True)
    at_ref = grpo_loss(same, None, same.detach(), torch.zeros(1), torch.ones(1, 2), cfg(beta=0.5), max_new_tokens=2)
    at_ref.loss.backward()
    assert float(at_ref.loss.detach()) == 0.0 and same.grad.tolist() == [[0.0, 0.0]]


def test_beta_needs_reference_logprobs():
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(torch.zeros(1, 1), None, None, torch.zeros(1), torch.ones(1, 1), cfg(beta=0.1), max_new_tokens=1)


# ------------------------------------------------------------------------------------------------ direction


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("off_policy", [False, True])
def test_a_gradient_step_raises_good_replies_and_lowers_bad_ones(loss_type, off_policy):
    torch.manual_seed(0)
    theta = torch.randn(2, 3, 5, requires_grad=True)  # independent logits per (row, position)
    tokens = torch.tensor([[0, 3, 1], [2, 2, 4]])
    adv = torch.tensor([1.0, -1.0])

    def logp():
        return torch.log_softmax(theta, dim=-1).gather(2, tokens[..., None]).squeeze(-1)

    before = logp().detach()
    old = before + 0.05 if off_policy else None  # ratios ≈ 0.95: inside the clip
    out = grpo_loss(logp(), old, None, adv, torch.ones(2, 3), cfg(loss_type=loss_type), max_new_tokens=3)
    out.loss.backward()
    with torch.no_grad():
        theta -= 0.5 * theta.grad
    after = logp().detach()
    assert (after[0] > before[0]).all()
    assert (after[1] < before[1]).all()


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            dict(group_size=1, scale_rewards="group"),
            "--group-size must be at least 2, got 1: a reply's advantage is its reward minus its group's mean, so a "
            "group of one has no variance (--scale-rewards group would divide by the spread of a single reward)",
        ),
        (
            dict(group_size=1, scale_rewards="none"),
            "--group-size must be at least 2, got 1: a reply's advantage is its reward minus its group's mean, so a "
            "group of one has no variance (every advantage would be 0 and nothing would be learned)",
        ),
        (dict(epsilon=0.2, epsilon_high=0.1), "--epsilon-high (0.1) is below --epsilon (0.2)"),
        (dict(beta=-0.01), "--beta must be 0 or positive, got -0.01"),
        (dict(epsilon=0.0), "--epsilon must be in (0, 1), got 0.0: the clip keeps ratios in [1 − ε, 1 + ε]"),
        (dict(epsilon=1.0), "--epsilon must be in (0, 1), got 1.0: the clip keeps ratios in [1 − ε, 1 + ε]"),
        (dict(epsilon_high=float("nan")), "--epsilon-high (nan) is below --epsilon (0.2)"),
        (dict(loss_type="bnpo"), "unknown --loss-type 'bnpo'"),
        (dict(scale_rewards="rank"), "unknown --scale-rewards 'rank'"),
        (dict(num_iterations=0), "--num-iterations must be at least 1, got 0"),
    ],
)
def test_config_errors_name_the_flag(kw, message):
    with pytest.raises(ConfigError) as err:
        GRPOConfig(**kw)
    assert err.value.message == message
    assert err.value.hint


def test_config_defaults_are_valid_and_symmetric():
    c = GRPOConfig()
    assert c.eps_high == c.epsilon == 0.2
    assert GRPOConfig(epsilon_high=0.28).eps_high == 0.28

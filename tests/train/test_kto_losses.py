"""KTO: hand-computed values, the mismatched-pair KL reference point (clamped, detached), limits, direction."""

from __future__ import annotations

import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.kto_losses import KTOLossConfig, kl_baseline, kl_sums, kto_loss


def _t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# r_c = −10 − (−12) = 2, r_r = −8 − (−7) = −1; mismatched examples' log-ratios 2 and 1: z₀ = 1.5.
ARGS = dict(policy_kl=_t(-8.0, -9.0), ref_kl=_t(-10.0, -10.0))


def test_values_by_hand():
    out = kto_loss(_t(-10.0), _t(-8.0), _t(-12.0), _t(-7.0), cfg=KTOLossConfig(beta=0.1), **ARGS)
    assert out.kl.item() == pytest.approx(1.5)
    assert out.chosen_losses.item() == pytest.approx(1 - _sigmoid(0.1 * (2 - 1.5)))  # 0.487503…
    assert out.rejected_losses.item() == pytest.approx(1 - _sigmoid(0.1 * (1.5 + 1)))  # 0.437823…
    assert out.chosen_losses.item() == pytest.approx(0.4875026)
    assert (out.rewards_chosen.item(), out.rewards_rejected.item()) == pytest.approx((0.2, -0.1))
    weighted = kto_loss(_t(-10.0), _t(-8.0), _t(-12.0), _t(-7.0),
                        cfg=KTOLossConfig(beta=0.1, desirable_weight=2.0, undesirable_weight=0.5), **ARGS)
    assert weighted.loss_sum.item() == pytest.approx(2 * out.chosen_losses.item() + 0.5 * out.rejected_losses.item())


def test_the_reference_point_is_clamped_at_zero_and_carries_no_gradient():
    pkl = torch.tensor([-11.0, -12.0], dtype=torch.float64, requires_grad=True)
    out = kto_loss(_t(-10.0), _t(-8.0), _t(-12.0), _t(-7.0), cfg=KTOLossConfig(), policy_kl=pkl, ref_kl=_t(-10, -10))
    assert out.kl.item() == 0.0  # mean log-ratio −1.5 < 0
    assert not out.kl.requires_grad
    total, count = kl_sums(_t(1.0, 2.0, 3.0), _t(0.0, 0.0, 0.0))
    assert (total.item(), count) == (6.0, 3) and kl_baseline(total, count).item() == 2.0
    assert kl_baseline(0.0, 0).item() == 0.0
    given = kto_loss(_t(-10.0), _t(-8.0), _t(-12.0), _t(-7.0), cfg=KTOLossConfig(), baseline=torch.tensor(0.5))
    assert given.kl.item() == 0.5


def test_limits_at_the_reference_point():
    # r = z₀ on both sides: each loss is 1 − σ(0) = ½, for any β.
    for beta in (0.1, 1.0, 5.0):
        out = kto_loss(_t(-3.0), _t(-4.0), _t(-3.5), _t(-4.5), cfg=KTOLossConfig(beta=beta), baseline=_t(0.5)[0])
        assert out.chosen_losses.item() == pytest.approx(0.5) and out.rejected_losses.item() == pytest.approx(0.5)
    # Far above / below: the losses tend to 0 (the value function saturates), finite in float32.
    big = kto_loss(torch.tensor([1e4]), torch.tensor([-1e4]), torch.zeros(1), torch.zeros(1), cfg=KTOLossConfig(),
                   baseline=torch.tensor(0.0))
    assert big.loss_sum.item() == pytest.approx(0.0, abs=1e-30)


def test_empty_sides_are_allowed():
    out = kto_loss(_t(), _t(-8.0), _t(), _t(-7.0), cfg=KTOLossConfig(), baseline=torch.tensor(0.0))
    assert out.chosen_losses.numel() == 0 and out.loss_sum.item() == pytest.approx(1 - _sigmoid(0.1))  # r_r = −1 below z₀ = 0


@pytest.mark.parametrize("z0", [0.0, 2.0])
def test_a_gradient_step_raises_desirable_and_lowers_undesirable(z0):
    pc = torch.tensor([-6.0], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-6.0], dtype=torch.float64, requires_grad=True)
    out = kto_loss(pc, pr, _t(-6.0), _t(-6.0), cfg=KTOLossConfig(beta=0.5), baseline=torch.tensor(z0))
    out.loss_sum.backward()
    assert pc.grad.item() < 0 < pr.grad.item()


def test_flags_are_checked_naming_them():
    with pytest.raises(ConfigError) as err:
        KTOLossConfig(beta=0)
    assert err.value.message == "--beta must be a positive number (got 0)"
    with pytest.raises(ConfigError) as err:
        KTOLossConfig(undesirable_weight=-1.0)
    assert err.value.message == "--undesirable-weight must be a positive number (got -1.0)"
    with pytest.raises(ValueError, match="mismatched"):
        kto_loss(_t(-1.0), _t(-1.0), _t(-1.0), _t(-1.0), cfg=KTOLossConfig())

"""DPO losses: hand-computed values per --loss, limits, stability, gradient direction and flag validation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.dpo_losses import LOSSES, METRIC_NAMES, DPOLossConfig, dpo_loss


def _t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def _loss(cfg: DPOLossConfig, pc, pr, rc, rr, nc=(4.0,), nr=(2.0,), **kw):
    return dpo_loss(_t(*pc), _t(*pr), _t(*rc), _t(*rr), chosen_tokens=_t(*nc), rejected_tokens=_t(*nr), cfg=cfg, **kw)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


# One pair: π_c = −10, ref_c = −12 (ratio +2), π_r = −8, ref_r = −7 (ratio −1), so h = 3; 4 and 2 reply tokens.
PAIR = dict(pc=(-10.0,), pr=(-8.0,), rc=(-12.0,), rr=(-7.0,))


def test_sigmoid_value_rewards_and_metrics_by_hand():
    out = _loss(DPOLossConfig(beta=0.5), **PAIR)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.5)))  # −log σ(0.5 · 3)
    assert out.loss.item() == pytest.approx(0.2014132779827524)
    assert out.rewards_chosen.item() == pytest.approx(1.0)  # 0.5 · (−10 − −12)
    assert out.rewards_rejected.item() == pytest.approx(-0.5)
    assert out.margins.item() == pytest.approx(1.5)
    assert out.accuracies.item() == 1.0
    assert out.logits.item() == pytest.approx(3.0)
    assert (out.logps_chosen.item(), out.logps_rejected.item()) == (-10.0, -8.0)
    assert out.nll.item() == pytest.approx(2.5)  # −π_c / n_c
    sums = out.metric_sums()
    assert tuple(sums) == METRIC_NAMES
    assert sums["rewards/margins"].item() == pytest.approx(1.5)


def test_hinge_value_by_hand():
    assert _loss(DPOLossConfig(beta=0.2, loss="hinge"), **PAIR).loss.item() == pytest.approx(0.4)  # 1 − 0.6
    assert _loss(DPOLossConfig(beta=0.5, loss="hinge"), **PAIR).loss.item() == 0.0  # βh = 1.5 ≥ 1


def test_ipo_averages_log_probs_per_reply_token():
    # h̄ = 2/4 − (−1)/2 = 1; with β = 0.25 the target 1/(2β) is 2, so the loss is (1 − 2)² = 1.
    out = _loss(DPOLossConfig(beta=0.25, loss="ipo"), **PAIR)
    assert out.logits.item() == pytest.approx(1.0)
    assert out.loss.item() == pytest.approx(1.0)
    # The rewards stay the summed implicit rewards, comparable with the other losses.
    assert out.rewards_chosen.item() == pytest.approx(0.5) and out.margins.item() == pytest.approx(0.75)
    # Token counts change the IPO loss (and only it): 8 chosen tokens gives h̄ = 2/8 + 1/2 = 0.75.
    longer = _loss(DPOLossConfig(beta=0.25, loss="ipo"), **PAIR, nc=(8.0,))
    assert longer.loss.item() == pytest.approx((0.75 - 2.0) ** 2)
    same = _loss(DPOLossConfig(beta=0.25), **PAIR, nc=(8.0,))
    assert same.loss.item() == pytest.approx(_loss(DPOLossConfig(beta=0.25), **PAIR).loss.item())


def test_robust_and_conservative_values_by_hand():
    ls_pos, ls_neg = _log_sigmoid(1.5), _log_sigmoid(-1.5)
    robust = _loss(DPOLossConfig(beta=0.5, loss="robust", label_smoothing=0.1), **PAIR).loss.item()
    assert robust == pytest.approx((-0.9 * ls_pos + 0.1 * ls_neg) / 0.8)
    assert robust == pytest.approx(0.013913, abs=1e-6)
    cdpo = _loss(DPOLossConfig(beta=0.5, loss="sigmoid", label_smoothing=0.1), **PAIR).loss.item()
    assert cdpo == pytest.approx(-0.9 * ls_pos - 0.1 * ls_neg)
    assert cdpo == pytest.approx(0.351413, abs=1e-6)


def test_sft_weight_adds_the_chosen_mean_token_nll():
    base = _loss(DPOLossConfig(beta=0.5), **PAIR)
    rpo = _loss(DPOLossConfig(beta=0.5, sft_weight=2.0), **PAIR)
    assert rpo.loss.item() == pytest.approx(base.loss.item() + 2.0 * 2.5)
    given = _loss(DPOLossConfig(beta=0.5, sft_weight=2.0), **PAIR, chosen_nll=_t(0.25))
    assert given.loss.item() == pytest.approx(base.loss.item() + 0.5)
    assert rpo.preference.item() == pytest.approx(base.loss.item())


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_limits_at_zero_log_ratio(beta):
    zero = dict(pc=(-5.0,), pr=(-9.0,), rc=(-5.0,), rr=(-9.0,))  # policy equals reference: h = 0
    assert _loss(DPOLossConfig(beta=beta), **zero).loss.item() == pytest.approx(math.log(2))
    assert _loss(DPOLossConfig(beta=beta, loss="hinge"), **zero).loss.item() == pytest.approx(1.0)
    assert _loss(DPOLossConfig(beta=beta, loss="ipo"), **zero).loss.item() == pytest.approx(1 / (4 * beta**2))
    assert _loss(DPOLossConfig(beta=beta, loss="robust", label_smoothing=0.2), **zero).loss.item() == pytest.approx(
        math.log(2)
    )
    out = _loss(DPOLossConfig(beta=beta), **zero)
    assert out.accuracies.item() == 0.0  # a tie is not a win


@pytest.mark.parametrize("loss,eps", [("sigmoid", 0.0), ("sigmoid", 0.3), ("hinge", 0.0), ("ipo", 0.0),
                                      ("robust", 0.0), ("robust", 0.3)])
def test_large_log_ratios_give_finite_losses_and_gradients(loss, eps):
    cfg = DPOLossConfig(beta=1.0, loss=loss, label_smoothing=eps)
    pc = torch.tensor([1e4, -1e4, 0.0], dtype=torch.float32, requires_grad=True)
    pr = torch.tensor([-1e4, 1e4, 0.0], dtype=torch.float32, requires_grad=True)
    zeros = torch.zeros(3)
    n = torch.ones(3)
    out = dpo_loss(pc, pr, zeros, zeros, chosen_tokens=n, rejected_tokens=n, cfg=cfg)
    out.loss.sum().backward()
    assert torch.isfinite(out.loss).all()
    assert torch.isfinite(pc.grad).all() and torch.isfinite(pr.grad).all()
    if loss == "sigmoid" and not eps:
        assert out.loss[0].item() == pytest.approx(0.0, abs=1e-30)
        assert out.loss[1].item() == pytest.approx(2e4)  # −log σ(−2e4) = 2e4, not inf


def test_small_label_smoothing_tends_to_sigmoid_and_robust_at_zero_is_sigmoid():
    args = dict(pc=(-10.0, -3.0, 1.0), pr=(-8.0, -2.0, 4.0), rc=(-12.0, -3.5, 0.0), rr=(-7.0, -1.0, 0.5),
                nc=(4.0, 1.0, 2.0), nr=(2.0, 3.0, 1.0))
    plain = _loss(DPOLossConfig(beta=0.3), **args).loss
    tiny = _loss(DPOLossConfig(beta=0.3, label_smoothing=1e-9), **args).loss
    assert torch.allclose(tiny, plain, atol=1e-7)
    robust0 = _loss(DPOLossConfig(beta=0.3, loss="robust"), **args).loss
    assert torch.equal(robust0, plain)


VARIANTS = [
    DPOLossConfig(beta=0.1),
    DPOLossConfig(beta=1.0),
    DPOLossConfig(beta=0.5, label_smoothing=0.2),
    DPOLossConfig(beta=0.5, loss="hinge"),
    DPOLossConfig(beta=0.5, loss="ipo"),
    DPOLossConfig(beta=0.5, loss="robust"),
    DPOLossConfig(beta=0.5, loss="robust", label_smoothing=0.3),
    DPOLossConfig(beta=0.5, sft_weight=1.0),
    DPOLossConfig(beta=0.5, loss="ipo", sft_weight=0.5),
]


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: f"{c.loss}-b{c.beta}-ls{c.label_smoothing}-a{c.sft_weight}")
@pytest.mark.parametrize("h", [-1.0, 0.0, 0.5])
def test_a_gradient_step_raises_chosen_and_lowers_rejected(cfg, h):
    pc = torch.tensor([-6.0 + h], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-6.0], dtype=torch.float64, requires_grad=True)
    ref = _t(-6.0)
    out = dpo_loss(pc, pr, ref, ref, chosen_tokens=_t(3.0), rejected_tokens=_t(2.0), cfg=cfg)
    out.loss.sum().backward()
    assert pc.grad.item() < 0 < pr.grad.item()
    # One plain gradient-descent step then widens the policy's margin.
    with torch.no_grad():
        after = (pc - 0.01 * pc.grad) - (pr - 0.01 * pr.grad)
    assert after.item() > h


def test_batched_equals_one_by_one():
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(6, generator=g, dtype=torch.float64) * 5 for _ in range(4))
    nc, nr = torch.randint(1, 9, (6,), generator=g), torch.randint(1, 9, (6,), generator=g)
    for loss in LOSSES:
        cfg = DPOLossConfig(beta=0.3, loss=loss)
        whole = dpo_loss(pc, pr, rc, rr, chosen_tokens=nc, rejected_tokens=nr, cfg=cfg).loss
        for i in range(6):
            one = dpo_loss(pc[i:i + 1], pr[i:i + 1], rc[i:i + 1], rr[i:i + 1], chosen_tokens=nc[i:i + 1],
                           rejected_tokens=nr[i:i + 1], cfg=cfg).loss
            assert one.item() == pytest.approx(whole[i].item())


def test_zero_reply_tokens_is_refused():
    with pytest.raises(ValueError, match="at least one token"):
        _loss(DPOLossConfig(loss="ipo"), **PAIR, nr=(0.0,))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(beta=0.0), "--beta must be a positive number (got 0.0)"),
        (dict(beta=-1.0), "--beta must be a positive number (got -1.0)"),
        (dict(beta=float("nan")), "--beta must be a positive number (got nan)"),
        (dict(loss="kto"), "--loss must be one of sigmoid, ipo, hinge, robust, simpo, orpo (got 'kto')"),
        (dict(label_smoothing=0.5), "--label-smoothing must be at least 0 and below 0.5 (got 0.5)"),
        (dict(label_smoothing=-0.1), "--label-smoothing must be at least 0 and below 0.5 (got -0.1)"),
        (dict(loss="robust", label_smoothing=0.7), "--label-smoothing must be at least 0 and below 0.5 (got 0.7)"),
        (dict(loss="hinge", label_smoothing=0.1),
         "--label-smoothing only applies to --loss sigmoid or robust, not --loss hinge"),
        (dict(loss="ipo", label_smoothing=0.1),
         "--label-smoothing only applies to --loss sigmoid or robust, not --loss ipo"),
        (dict(sft_weight=-0.5), "--sft-weight must be 0 (off) or more (got -0.5)"),
    ],
)
def test_config_rejects_invalid_combinations_naming_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        DPOLossConfig(**kwargs)
    assert err.value.message == message


def test_every_valid_combination_is_accepted():
    for loss, eps, alpha in itertools.product(LOSSES, (0.0, 0.25), (0.0, 1.0)):
        if eps and loss in ("hinge", "ipo", "simpo", "orpo"):
            continue
        if alpha and loss == "orpo":  # its NLL term is built in (test_ref_free_losses)
            continue
        assert DPOLossConfig(beta=0.1, loss=loss, label_smoothing=eps, sft_weight=alpha).to_dict()["loss"] == loss

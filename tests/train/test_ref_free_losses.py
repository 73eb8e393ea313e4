"""SimPO and ORPO (reference-free `--loss` values of `kat train dpo`): hand-computed values, limits, stability,
gradient direction and flag validation."""

from __future__ import annotations

import math

import pytest
import torch

from katcli.errors import ConfigError
from katcli.train.dpo_losses import REFERENCE_FREE, DPOLossConfig, dpo_loss, log1mexp, log_odds_ratio


def _t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def _loss(cfg, pc=(-10.0,), pr=(-8.0,), nc=(4.0,), nr=(2.0,), **kw):
    # No reference at all: a reference-free loss never reads it.
    return dpo_loss(_t(*pc), _t(*pr), None, None, chosen_tokens=_t(*nc), rejected_tokens=_t(*nr), cfg=cfg, **kw)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# One pair: π_c = −10 over 4 tokens (mean −2.5), π_r = −8 over 2 tokens (mean −4): the chosen reply is likelier
# per token although its sum is lower, which is exactly the case length normalisation exists for.


def test_simpo_value_rewards_and_margin_by_hand():
    out = _loss(DPOLossConfig(beta=2.0, loss="simpo"))
    # −log σ(β (a_c − a_r) − γ) = −log σ(2 · 1.5 − 0.5) = softplus(−2.5)
    assert out.loss.item() == pytest.approx(_softplus(-2.5)) and out.loss.item() == pytest.approx(0.0788897343)
    assert out.logits.item() == pytest.approx(1.5)
    assert (out.rewards_chosen.item(), out.rewards_rejected.item()) == pytest.approx((-5.0, -8.0))  # β a
    assert out.margins.item() == pytest.approx(3.0) and out.accuracies.item() == 1.0
    assert out.nll.item() == pytest.approx(2.5)
    gamma = _loss(DPOLossConfig(beta=2.0, loss="simpo", simpo_gamma=2.0))
    assert gamma.loss.item() == pytest.approx(_softplus(-1.0))  # a larger target margin: a larger loss
    cpo = _loss(DPOLossConfig(beta=2.0, loss="simpo", sft_weight=0.5))
    assert cpo.loss.item() == pytest.approx(_softplus(-2.5) + 0.5 * 2.5)  # CPO-SimPO: + α · NLL(chosen)


def test_simpo_is_length_normalised_where_dpo_sums():
    # The same sums with the chosen reply twice as long: the per-token mean halves, so SimPO's logit falls.
    short = _loss(DPOLossConfig(beta=2.0, loss="simpo"), nc=(2.0,))
    long = _loss(DPOLossConfig(beta=2.0, loss="simpo"), nc=(8.0,))
    assert short.logits.item() == pytest.approx(-5.0 + 4.0)
    assert long.logits.item() == pytest.approx(-1.25 + 4.0)
    assert long.loss.item() < short.loss.item()


def test_orpo_value_by_hand():
    out = _loss(DPOLossConfig(beta=0.1, loss="orpo"))
    log_odds = 1.5 - (math.log(1 - math.exp(-2.5)) - math.log(1 - math.exp(-4.0)))
    assert out.logits.item() == pytest.approx(log_odds) and log_odds == pytest.approx(1.5671650369)
    # NLL(chosen) + β · −log σ(log odds)
    assert out.loss.item() == pytest.approx(2.5 + 0.1 * _softplus(-log_odds))
    assert out.loss.item() == pytest.approx(2.5189492302)
    assert out.preference.item() == pytest.approx(0.1 * _softplus(-log_odds))
    assert (out.rewards_chosen.item(), out.rewards_rejected.item()) == pytest.approx((-0.25, -0.4))


@pytest.mark.parametrize("beta", [0.1, 1.0, 2.0])
def test_limits_at_equal_per_token_log_probs(beta):
    same = dict(pc=(-6.0,), pr=(-3.0,), nc=(4.0,), nr=(2.0,))  # both −1.5 per token
    simpo = _loss(DPOLossConfig(beta=beta, loss="simpo"), **same)
    assert simpo.loss.item() == pytest.approx(_softplus(0.5))  # −log σ(−γ)
    assert simpo.accuracies.item() == 0.0  # a tie is not a win
    assert _loss(DPOLossConfig(beta=beta, loss="simpo", simpo_gamma=0.0), **same).loss.item() == pytest.approx(
        math.log(2))
    orpo = _loss(DPOLossConfig(beta=beta, loss="orpo"), **same)
    assert orpo.logits.item() == pytest.approx(0.0, abs=1e-12)
    assert orpo.loss.item() == pytest.approx(1.5 + beta * math.log(2))
    assert orpo.accuracies.item() == 0.0


def test_log1mexp_is_accurate_on_both_branches_and_odds_at_certainty_stay_finite():
    x = _t(-1e-8, -0.1, -0.6931, -0.6932, -5.0, -50.0)
    # Each value by whichever of the two forms is exact in its regime (far from 0, log(−expm1) rounds to 0).
    exact = torch.tensor([math.log(-math.expm1(v)) if v > -0.5 else math.log1p(-math.exp(v)) for v in x.tolist()],
                         dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x), exact, rtol=1e-12, atol=0)
    # A reply the policy predicts with certainty (mean log-prob 0) has infinite odds: clamped, not inf/nan.
    lo = log_odds_ratio(torch.tensor([0.0]), torch.tensor([-1.0]))
    assert torch.isfinite(lo).all() and lo.item() > 10


@pytest.mark.parametrize("loss", REFERENCE_FREE)
def test_large_log_probs_give_finite_losses_and_gradients(loss):
    cfg = DPOLossConfig(beta=2.0, loss=loss)
    pc = torch.tensor([-1e-3, -1e4, -3.0], dtype=torch.float32, requires_grad=True)
    pr = torch.tensor([-1e4, -1e-3, -3.0], dtype=torch.float32, requires_grad=True)
    n = torch.ones(3)
    out = dpo_loss(pc, pr, None, None, chosen_tokens=n, rejected_tokens=n, cfg=cfg)
    out.loss.sum().backward()
    assert torch.isfinite(out.loss).all() and torch.isfinite(pc.grad).all() and torch.isfinite(pr.grad).all()


@pytest.mark.parametrize("cfg", [
    DPOLossConfig(beta=0.1, loss="simpo"), DPOLossConfig(beta=2.0, loss="simpo"),
    DPOLossConfig(beta=2.0, loss="simpo", simpo_gamma=0.0), DPOLossConfig(beta=2.0, loss="simpo", sft_weight=1.0),
    DPOLossConfig(beta=0.1, loss="orpo"), DPOLossConfig(beta=1.0, loss="orpo"),
], ids=lambda c: f"{c.loss}-b{c.beta}-g{c.simpo_gamma}-a{c.sft_weight}")
@pytest.mark.parametrize("gap", [-1.0, 0.0, 0.5])
def test_a_gradient_step_raises_chosen_and_lowers_rejected(cfg, gap):
    pc = torch.tensor([-6.0 + gap], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)  # 3 and 2 tokens: means −2 + gap/3, −2
    out = dpo_loss(pc, pr, None, None, chosen_tokens=_t(3.0), rejected_tokens=_t(2.0), cfg=cfg)
    out.loss.sum().backward()
    assert pc.grad.item() < 0 < pr.grad.item()
    with torch.no_grad():
        before = out.logits.item()
        after = dpo_loss(pc - 0.01 * pc.grad, pr - 0.01 * pr.grad, None, None, chosen_tokens=_t(3.0),
                         rejected_tokens=_t(2.0), cfg=cfg).logits.item()
    assert after > before


def test_the_reference_based_losses_still_need_a_reference():
    with pytest.raises(ValueError, match="needs the reference's log-probs"):
        _loss(DPOLossConfig(loss="sigmoid"))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(loss="orpo", sft_weight=1.0), "--sft-weight does not apply to --loss orpo: its loss already is the "
         "chosen reply's NLL plus --beta × the odds-ratio term"),
        (dict(loss="sigmoid", simpo_gamma=1.0), "--simpo-gamma only applies to --loss simpo, not --loss sigmoid"),
        (dict(loss="simpo", simpo_gamma=-1.0), "--simpo-gamma must be 0 or more (got -1.0)"),
        (dict(loss="simpo", label_smoothing=0.1),
         "--label-smoothing only applies to --loss sigmoid or robust, not --loss simpo"),
        (dict(loss="orpo", label_smoothing=0.1),
         "--label-smoothing only applies to --loss sigmoid or robust, not --loss orpo"),
    ],
)
def test_config_rejects_invalid_combinations_naming_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        DPOLossConfig(**kwargs)
    assert err.value.message == message


def test_records_name_gamma_only_for_simpo():
    assert DPOLossConfig(loss="simpo").to_dict() == {"beta": 0.1, "loss": "simpo", "label_smoothing": 0.0,
                                                     "sft_weight": 0.0, "simpo_gamma": 0.5}
    assert "simpo_gamma" not in DPOLossConfig(loss="orpo").to_dict()
    assert DPOLossConfig().to_dict() == {"beta": 0.1, "loss": "sigmoid", "label_smoothing": 0.0, "sft_weight": 0.0}
    assert DPOLossConfig(loss="orpo").reference_free and not DPOLossConfig(loss="ipo").reference_free

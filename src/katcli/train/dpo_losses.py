"""Direct preference optimisation losses: pure functions of the policy's and the reference's reply log-probs.

Every variant sees one pair through four summed reply log-probs — policy π and frozen reference ref, on the chosen
(c) and rejected (r) reply — and scores the log-ratio difference

    h = (π_c − ref_c) − (π_r − ref_r)

- `sigmoid` (DPO, Rafailov et al., 2023): `−log σ(βh)`. With `--label-smoothing ε` it is conservative DPO
  (cDPO; TRL's `label_smoothing`): `−(1−ε) log σ(βh) − ε log σ(−βh)`, the loss when a fraction ε of labels is
  assumed flipped. Its gradient vanishes at `βh = log((1−ε)/ε)` instead of pushing margins to infinity.
- `hinge` (SLiC): `max(0, 1 − βh)`.
- `ipo` (Azar et al., 2023): `(h̄ − 1/(2β))²`, where h̄ is h computed from log-probs *averaged per reply token*
  (`π_c / n_c` etc.), as in the IPO paper and TRL. This is why the function takes each reply's token count.
- `robust` (Chowdhury et al., 2024): `(−(1−ε) log σ(βh) + ε log σ(−βh)) / (1 − 2ε)`, an unbiased estimate of the
  clean-label DPO loss when labels flip with probability ε (`0 ≤ ε < 0.5`; ε = 0 is plain `sigmoid`).

`--sft-weight α` adds `α × NLL(chosen)`, the chosen reply's mean per-token negative log-likelihood under the policy
(RPO, Pang et al., 2024), which keeps the policy from lowering the chosen reply's likelihood along with the
rejected one. Callers pass that NLL in; by default it is `−π_c / n_c`, the same quantity from the inputs.

Two reference-free losses see only the policy, through each reply's *mean* token log-probability
`a = π / n` (no reference pass, no cache; `ref_*` are ignored and may be None):

- `simpo` (SimPO, Meng et al., 2024): `−log σ(β(a_c − a_r) − γ)`, the length-normalised margin with a target
  margin γ (`--simpo-gamma`, default 0.5 as TRL's `simpo_gamma`; TRL's CPOTrainer with `loss_type="simpo"`).
  `--sft-weight` adds the chosen NLL as TRL's `cpo_alpha` does (CPO-SimPO).
- `orpo` (ORPO, Hong et al., 2024): the chosen reply's NLL plus `β × −log σ(log odds_c − log odds_r)`, where
  `log odds(a) = a − log(1 − eᵃ)` (TRL's ORPOTrainer, whose `beta` is the paper's λ). The NLL is part of the loss
  (weight 1), so `--sft-weight` is refused.

The reported implicit rewards are `β(π − ref)` on *summed* log-probs for every reference-based variant (DPO's
implicit reward model), so accuracies and margins are comparable across those `--loss` values; the reference-free
ones report the reward their method defines, `β·a` (SimPO's reward; what TRL logs for ORPO). `logits` is the
quantity the loss itself used (h̄ for `ipo`, `a_c − a_r` for `simpo`, the log-odds ratio for `orpo`); a pair counts
as right when it is > 0. All logs are computed with `logsigmoid`, so large |h| gives finite losses and gradients.

Nothing here knows models, tokens, batches or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from katcli.errors import ConfigError
from katcli.train.loss_names import DPO_LOSSES as LOSSES
from katcli.train.loss_names import HINGE, IPO, ORPO, REFERENCE_FREE, ROBUST, SIGMOID, SIMPO, SMOOTHABLE

SIMPO_GAMMA = 0.5  # TRL's CPOConfig.simpo_gamma
LOG_PROB_CEILING = -1e-6  # ORPO's odds need a < 0: log(1 − eᵃ) is −inf at a = 0

# Per-step metric names, as TRL's DPOTrainer logs them (means over the step's pairs).
METRIC_NAMES = (
    "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
    "logps/rejected",
)


@dataclass(frozen=True)
class DPOLossConfig:
    """`--beta`, `--loss`, `--label-smoothing`, `--sft-weight`, `--simpo-gamma`; invalid combinations are refused
    naming the flag."""

    beta: float = 0.1
    loss: str = SIGMOID
    label_smoothing: float = 0.0
    sft_weight: float = 0.0
    simpo_gamma: float | None = None  # None: SIMPO_GAMMA under --loss simpo

    @property
    def reference_free(self) -> bool:
        return self.loss in REFERENCE_FREE

    @property
    def gamma(self) -> float:
        return SIMPO_GAMMA if self.simpo_gamma is None else self.simpo_gamma

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)} (got {self.loss!r})")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"--beta must be a positive number (got {self.beta})")
        eps = self.label_smoothing
        if not (math.isfinite(eps) and 0.0 <= eps < 0.5):
            raise ConfigError(f"--label-smoothing must be at least 0 and below 0.5 (got {eps})")
        if eps and self.loss not in SMOOTHABLE:
            raise ConfigError(
                f"--label-smoothing only applies to --loss {' or '.join(SMOOTHABLE)}, not --loss {self.loss}"
            )
        if not (math.isfinite(self.sft_weight) and self.sft_weight >= 0):
            raise ConfigError(f"--sft-weight must be 0 (off) or more (got {self.sft_weight})")
        if self.sft_weight and self.loss == ORPO:
            raise ConfigError(
                "--sft-weight does not apply to --loss orpo: its loss already is the chosen reply's NLL plus "
                "--beta × the odds-ratio term", hint="weigh the odds-ratio term with --beta (ORPO's λ)",
            )
        if self.simpo_gamma is not None:
            if self.loss != SIMPO:
                raise ConfigError(f"--simpo-gamma only applies to --loss simpo, not --loss {self.loss}")
            if not (math.isfinite(self.simpo_gamma) and self.simpo_gamma >= 0):
                raise ConfigError(f"--simpo-gamma must be 0 or more (got {self.simpo_gamma})")

    def to_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = {"beta": self.beta, "loss": self.loss, "label_smoothing": self.label_smoothing,
                                       "sft_weight": self.sft_weight}
        if self.loss == SIMPO:  # recorded only where it applies: other runs' records are unchanged
            out["simpo_gamma"] = self.gamma
        return out


@dataclass
class DPOLoss:
    """Per-pair tensors; `loss` is what is minimised (summed or averaged by the caller), the rest is detached."""

    loss: torch.Tensor
    preference: torch.Tensor  # the --loss term alone
    nll: torch.Tensor  # the chosen reply's mean token NLL (logged even when --sft-weight is 0)
    logits: torch.Tensor  # h (h̄ for ipo), what the preference term saw
    rewards_chosen: torch.Tensor  # β (π_c − ref_c)
    rewards_rejected: torch.Tensor  # β (π_r − ref_r)
    margins: torch.Tensor  # rewards_chosen − rewards_rejected = β h
    accuracies: torch.Tensor  # 1.0 where the implicit reward prefers the chosen reply strictly (h > 0)
    logps_chosen: torch.Tensor  # π_c, summed over the reply
    logps_rejected: torch.Tensor

    def metric_sums(self) -> dict[str, torch.Tensor]:
        """Sums over the pairs of every `METRIC_NAMES` entry (divide by the pair count for TRL's means)."""
        parts = (
            self.loss.detach(), self.rewards_chosen, self.rewards_rejected, self.accuracies, self.margins,
            self.logps_chosen, self.logps_rejected,
        )
        return {name: t.sum() for name, t in zip(METRIC_NAMES, parts)}


def preference_loss(logits: torch.Tensor, cfg: DPOLossConfig) -> torch.Tensor:
    """The `--loss` term of each pair from its logits (h, or h̄ for ipo)."""
    bh = cfg.beta * logits
    eps = cfg.label_smoothing
    if cfg.loss == SIGMOID:
        loss = -F.logsigmoid(bh)
        return (1 - eps) * loss - eps * F.logsigmoid(-bh) if eps else loss
    if cfg.loss == HINGE:
        return torch.relu(1 - bh)
    if cfg.loss == IPO:
        return (logits - 1 / (2 * cfg.beta)).square()
    if cfg.loss == ROBUST:
        return (-(1 - eps) * F.logsigmoid(bh) + eps * F.logsigmoid(-bh)) / (1 - 2 * eps)
    raise ValueError(f"unknown DPO loss {cfg.loss!r}")


def _check_counts(n_c: torch.Tensor, n_r: torch.Tensor) -> None:
    """Refuse empty replies without reading the counts back to the host (an assert queued on the device: on a GPU
    a `bool()` here would stall every micro-batch; on the CPU it fails at once)."""
    try:
        torch._assert_async((n_c >= 1).all() & (n_r >= 1).all(), _EMPTY_REPLY)
    except RuntimeError:
        raise ValueError(_EMPTY_REPLY) from None


_EMPTY_REPLY = "every reply needs at least one token"


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """`log(1 − eˣ)` for x < 0, without cancellation (branch at −ln 2, Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def log_odds_ratio(mean_chosen: torch.Tensor, mean_rejected: torch.Tensor) -> torch.Tensor:
    """ORPO's `log(odds(y_c) / odds(y_r))` from mean token log-probs, `odds(a) = eᵃ / (1 − eᵃ)`."""
    a_c = mean_chosen.clamp(max=LOG_PROB_CEILING)
    a_r = mean_rejected.clamp(max=LOG_PROB_CEILING)
    return (a_c - a_r) - (log1mexp(a_c) - log1mexp(a_r))


def _reply_tokens(policy: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor):
    n_c = chosen_tokens.to(policy.dtype)
    n_r = rejected_tokens.to(policy.dtype)
    _check_counts(n_c, n_r)
    return n_c, n_r


def reference_free_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    *,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    cfg: DPOLossConfig,
    chosen_nll: torch.Tensor | None = None,
) -> DPOLoss:
    """SimPO's or ORPO's per-pair quantities from summed reply log-probs and reply token counts (shaped `[n]`)."""
    n_c, n_r = _reply_tokens(policy_chosen, chosen_tokens, rejected_tokens)
    a_c, a_r = policy_chosen / n_c, policy_rejected / n_r
    if chosen_nll is None:
        chosen_nll = -a_c
    if cfg.loss == SIMPO:
        logits = a_c - a_r
        pref = -F.logsigmoid(cfg.beta * logits - cfg.gamma)
        total = pref + cfg.sft_weight * chosen_nll if cfg.sft_weight else pref
    elif cfg.loss == ORPO:
        logits = log_odds_ratio(a_c, a_r)
        pref = -cfg.beta * F.logsigmoid(logits)
        total = chosen_nll + pref
    else:
        raise ValueError(f"{cfg.loss!r} is not a reference-free loss")
    rewards_c, rewards_r = (cfg.beta * a_c).detach(), (cfg.beta * a_r).detach()
    return DPOLoss(
        loss=total, preference=pref, nll=chosen_nll.detach(), logits=logits.detach(), rewards_chosen=rewards_c,
        rewards_rejected=rewards_r, margins=rewards_c - rewards_r,
        accuracies=(logits.detach() > 0).to(policy_chosen.dtype), logps_chosen=policy_chosen.detach(),
        logps_rejected=policy_rejected.detach(),
    )


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor | None,
    ref_rejected: torch.Tensor | None,
    *,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    cfg: DPOLossConfig,
    chosen_nll: torch.Tensor | None = None,
) -> DPOLoss:
    """Every per-pair DPO quantity from summed reply log-probs and reply token counts (all shaped `[n]`).

    `chosen_tokens`/`rejected_tokens` are the number of reply tokens each sum ran over (at least 1); `ipo` averages
    with them and the default `chosen_nll` is `−policy_chosen / chosen_tokens`. A reference-free `--loss` (simpo,
    orpo) goes to `reference_free_loss` and never reads `ref_*`.
    """
    if cfg.reference_free:
        return reference_free_loss(
            policy_chosen, policy_rejected, chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens, cfg=cfg,
            chosen_nll=chosen_nll,
        )
    if ref_chosen is None or ref_rejected is None:
        raise ValueError(f"--loss {cfg.loss} needs the reference's log-probs")
    ref_chosen = ref_chosen.to(policy_chosen.dtype)
    ref_rejected = ref_rejected.to(policy_rejected.dtype)
    n_c, n_r = _reply_tokens(policy_chosen, chosen_tokens, rejected_tokens)
    ratio_c = policy_chosen - ref_chosen
    ratio_r = policy_rejected - ref_rejected
    h = ratio_c - ratio_r
    logits = ratio_c / n_c - ratio_r / n_r if cfg.loss == IPO else h
    pref = preference_loss(logits, cfg)
    if chosen_nll is None:
        chosen_nll = -policy_chosen / n_c
    total = pref + cfg.sft_weight * chosen_nll if cfg.sft_weight else pref
    rewards_c = (cfg.beta * ratio_c).detach()
    rewards_r = (cfg.beta * ratio_r).detach()
    margins = rewards_c - rewards_r
    return DPOLoss(
        loss=total,
        preference=pref,
        nll=chosen_nll.detach(),
        logits=logits.detach(),
        rewards_chosen=rewards_c,
        rewards_rejected=rewards_r,
        margins=margins,
        accuracies=(h.detach() > 0).to(policy_chosen.dtype),
        logps_chosen=policy_chosen.detach(),
        logps_rejected=policy_rejected.detach(),
    )

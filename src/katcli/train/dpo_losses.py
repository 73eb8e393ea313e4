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

The reported implicit rewards are `β(π − ref)` on *summed* log-probs for every variant (DPO's implicit reward
model), so accuracies and margins are comparable across `--loss` values; `logits` is the quantity the loss itself
used (h̄ for `ipo`). All logs are computed with `logsigmoid`, so large |h| gives finite losses and gradients.

Nothing here knows models, tokens, batches or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from katcli.errors import ConfigError
from katcli.train.loss_names import DPO_LOSSES as LOSSES
from katcli.train.loss_names import HINGE, IPO, ROBUST, SIGMOID, SMOOTHABLE

# Per-step metric names, as TRL's DPOTrainer logs them (means over the step's pairs).
METRIC_NAMES = (
    "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
    "logps/rejected",
)


@dataclass(frozen=True)
class DPOLossConfig:
    """`--beta`, `--loss`, `--label-smoothing`, `--sft-weight`; invalid combinations are refused naming the flag."""

    beta: float = 0.1
    loss: str = SIGMOID
    label_smoothing: float = 0.0
    sft_weight: float = 0.0

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

    def to_dict(self) -> dict[str, float | str]:
        return {"beta": self.beta, "loss": self.loss, "label_smoothing": self.label_smoothing,
                "sft_weight": self.sft_weight}


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


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    cfg: DPOLossConfig,
    chosen_nll: torch.Tensor | None = None,
) -> DPOLoss:
    """Every per-pair DPO quantity from summed reply log-probs and reply token counts (all shaped `[n]`).

    `chosen_tokens`/`rejected_tokens` are the number of reply tokens each sum ran over (at least 1); `ipo` averages
    with them and the default `chosen_nll` is `−policy_chosen / chosen_tokens`.
    """
    ref_chosen = ref_chosen.to(policy_chosen.dtype)
    ref_rejected = ref_rejected.to(policy_rejected.dtype)
    n_c = chosen_tokens.to(policy_chosen.dtype)
    n_r = rejected_tokens.to(policy_rejected.dtype)
    _check_counts(n_c, n_r)
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

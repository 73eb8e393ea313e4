"""KTO (Ethayarajh et al., 2024): a prospect-theoretic loss on unpaired desirable and undesirable replies.

Each reply y to a prompt x is one example with its implicit reward `r = log π(y|x) − log π_ref(y|x)` (summed reply
log-probs). Against a reference point z₀, an estimate of KL(π ‖ π_ref):

    desirable   (chosen replies):   λ_D · (1 − σ(β (r − z₀)))
    undesirable (rejected replies): λ_U · (1 − σ(β (z₀ − r)))

z₀ comes from *mismatched* pairs, as TRL does: each prompt of the batch with the reply of another example, so the
policy's and the reference's log-probs of replies that do not answer that prompt; `z₀ = max(0, mean(π_KL − ref_KL))`,
detached (no gradient flows through the reference point). Under several ranks the mean is over the global batch:
callers sum `kl_sums()` over ranks and pass `kl_baseline=` (TRL averages the ranks' means: the same when every rank
holds as many mismatched examples, as kat's sharded batches do up to one).

The per-example losses are returned separately for desirable and undesirable examples; the step's loss is their
sum over the examples of the global batch divided by the number of examples (TRL's mean over the batch). The
reported rewards are `β r` (TRL's `rewards/chosen`, `rewards/rejected`); a pair is right when `r_c > r_r`.

Pure functions of tensors: nothing here knows models, tokens or batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from katcli.errors import ConfigError

METRIC_NAMES = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl")


@dataclass(frozen=True)
class KTOLossConfig:
    """`kat train kto`'s `--beta`, `--desirable-weight`, `--undesirable-weight` (TRL's KTOConfig defaults)."""

    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ConfigError(f"--beta must be a positive number (got {self.beta})")
        for flag, w in (("--desirable-weight", self.desirable_weight), ("--undesirable-weight", self.undesirable_weight)):
            if not (math.isfinite(w) and w > 0):
                raise ConfigError(f"{flag} must be a positive number (got {w})")

    def to_dict(self) -> dict[str, float]:
        return {"beta": self.beta, "desirable_weight": self.desirable_weight,
                "undesirable_weight": self.undesirable_weight}


def kl_sums(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(Σ (π_KL − ref_KL), count) over mismatched examples: what ranks add up before `kl_baseline`."""
    return (policy_kl.detach() - ref_kl.detach().to(policy_kl.dtype)).sum(), int(policy_kl.numel())


def kl_baseline(total: torch.Tensor | float, count: int) -> torch.Tensor:
    """KTO's reference point z₀ = max(0, mean log-ratio of the mismatched examples), detached."""
    t = torch.as_tensor(total, dtype=torch.float64).detach()
    return (t / count).clamp(min=0) if count else torch.zeros((), dtype=torch.float64)


@dataclass
class KTOLoss:
    chosen_losses: torch.Tensor  # [n_c], weighted by λ_D, with grad
    rejected_losses: torch.Tensor  # [n_r], weighted by λ_U, with grad
    rewards_chosen: torch.Tensor  # β r_c, detached
    rewards_rejected: torch.Tensor  # β r_r, detached
    kl: torch.Tensor  # z₀ (scalar)

    @property
    def loss_sum(self) -> torch.Tensor:
        return self.chosen_losses.sum() + self.rejected_losses.sum()


def kto_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    cfg: KTOLossConfig,
    policy_kl: torch.Tensor | None = None,
    ref_kl: torch.Tensor | None = None,
    baseline: torch.Tensor | None = None,
) -> KTOLoss:
    """KTO on summed reply log-probs: desirable `[n_c]`, undesirable `[n_r]` (either may be empty).

    The reference point is `baseline` when given (the global one), else computed from `policy_kl` / `ref_kl`."""
    if baseline is None:
        if policy_kl is None or ref_kl is None:
            raise ValueError("KTO needs the mismatched examples' log-probs or a precomputed kl baseline")
        baseline = kl_baseline(*kl_sums(policy_kl, ref_kl))
    dtype = policy_chosen.dtype if policy_chosen.numel() else policy_rejected.dtype
    z0 = baseline.detach().to(dtype=dtype, device=policy_chosen.device)
    r_c = policy_chosen - ref_chosen.to(policy_chosen.dtype)
    r_r = policy_rejected - ref_rejected.to(policy_rejected.dtype)
    chosen = cfg.desirable_weight * (1 - F.sigmoid(cfg.beta * (r_c - z0)))
    rejected = cfg.undesirable_weight * (1 - F.sigmoid(cfg.beta * (z0 - r_r)))
    return KTOLoss(
        chosen_losses=chosen, rejected_losses=rejected, rewards_chosen=(cfg.beta * r_c).detach(),
        rewards_rejected=(cfg.beta * r_r).detach(), kl=z0,
    )

"""PPO for language models (Schulman et al. 2017; Ouyang et al. 2022): per-token rewards, GAE, clipped losses.

Tensors are `[B, T]` over reply tokens with a `mask` (1 on reply tokens, a prefix of each row).

- `kl_penalty_rewards`: the per-token reward `−β·kl_t`, plus the reward model's score on the reply's last token.
  The KL penalty is *in the reward* (InstructGPT, TRL's PPOTrainer and OpenRLHF all do this for PPO), with TRL's
  and OpenRLHF's default estimator k1 = `logπ − logπ_ref` (`k3` = `exp(q) − q − 1`, q = `logπ_ref − logπ`, as
  GRPO's loss term, on request). The score sits on the last reply token, as OpenRLHF and InstructGPT place it;
  TRL puts it one position *after* the last token (its `padding_mask_p1` layout), which only differs when λ < 1.
- `gae`: generalised advantage estimation (Schulman et al. 2016), `δ_t = r_t + γ V_{t+1} − V_t`,
  `A_t = δ_t + γλ A_{t+1}`, with V and A zero after the reply's end; returns `A + V` (the value target).
- `masked_whiten`: `(x − μ) / sqrt(σ² + 1e-8)` over the masked entries, σ² unbiased (TRL's `masked_whiten`);
  PPO whitens the advantages of the whole rollout batch.
- `policy_loss`: `max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))` per token, ρ = `exp(logπ − logπ_old)`.
- `value_loss`: `½ max((V − R)², (clip(V, V_old ± ε_v) − R)²)` per token.

The losses come back as sums over the masked tokens (`numerator`) with their token count, like `grpo_loss`: the
training loop divides by the step's token total over micro-batches and ranks (TRL's `masked_mean` per micro-batch
is the one-micro-batch case). Pure functions of tensors: nothing here knows models, rollouts or ranks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from katcli.errors import ConfigError
from katcli.train.loss_names import KL_ESTIMATORS, KL_K1, KL_K3
WHITEN_EPS = 1e-8  # TRL's


@dataclass(frozen=True)
class PPOConfig:
    """`kat train ppo`'s loss flags, with TRL's PPOConfig defaults; each check names its flag."""

    kl_coef: float = 0.05
    kl_estimator: str = KL_K1
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ppo_epochs: int = 4
    num_minibatches: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ConfigError(f"--kl-coef must be 0 or more (got {self.kl_coef})")
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ConfigError(f"unknown --kl-estimator {self.kl_estimator!r}", hint="choose k1 or k3")
        for flag, v in (("--gamma", self.gamma), ("--lam", self.lam)):
            if not 0 <= v <= 1:
                raise ConfigError(f"{flag} must be in [0, 1] (got {v})")
        for flag, v in (("--cliprange", self.cliprange), ("--cliprange-value", self.cliprange_value)):
            if not v > 0:
                raise ConfigError(f"{flag} must be positive (got {v})", hint="PPO's usual value is 0.2")
        if not self.vf_coef > 0:
            raise ConfigError(f"--vf-coef must be positive (got {self.vf_coef})")
        if self.ppo_epochs < 1:
            raise ConfigError(f"--ppo-epochs must be at least 1 (got {self.ppo_epochs})")
        if self.num_minibatches < 1:
            raise ConfigError(f"--num-minibatches must be at least 1 (got {self.num_minibatches})")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum()


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True, mean: torch.Tensor | None = None,
    var: torch.Tensor | None = None,
) -> torch.Tensor:
    """Whitened over the masked entries (unbiased variance, as TRL); entries off the mask are set to 0.

    `mean` / `var` given: the statistics of a larger batch (summed over ranks by the caller) instead of `x`'s."""
    m = mask.to(x.dtype)
    if mean is None or var is None:
        n = m.sum()
        if n < 2:
            raise ValueError("whitening needs at least two masked entries")
        mean = (x * m).sum() / n
        var = ((x - mean).square() * m).sum() / n * (n / (n - 1))
    out = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    if not shift_mean:
        out = out + mean
    return torch.where(mask.bool(), out, 0.0)


def per_token_kl(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = KL_K1) -> torch.Tensor:
    """The per-token KL(π ‖ π_ref) estimate on sampled tokens: k1 = logπ − logπ_ref, or k3 (≥ 0)."""
    if estimator == KL_K1:
        return logp - ref_logp
    if estimator == KL_K3:
        q = ref_logp - logp
        return torch.exp(q) - q - 1
    raise ValueError(f"unknown KL estimator {estimator!r}")


def kl_penalty_rewards(
    scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, *, kl_coef: float,
    estimator: str = KL_K1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(`[B, T]` per-token rewards, `[B, T]` kl): `−kl_coef·kl` on reply tokens, plus `scores` `[B]` on each
    reply's last token. Rows must have at least one reply token."""
    real = mask.bool()
    lengths = real.sum(dim=1)
    if bool((lengths < 1).any()):
        raise ValueError("every reply needs at least one token")
    kl = torch.where(real, per_token_kl(logp, ref_logp, estimator), 0.0)
    rewards = -kl_coef * kl
    last = (lengths - 1).long()
    rewards = rewards.clone()
    rewards[torch.arange(rewards.size(0), device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) `[B, T]`; positions after the reply are terminal (V = 0 there, A = 0 there)."""
    real = mask.bool()
    r = torch.where(real, rewards, 0.0)
    v = torch.where(real, values, 0.0)
    T = r.size(1)
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[:, 0])
    for t in reversed(range(T)):
        nxt = v[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = r[:, t] + gamma * nxt - v[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    adv = torch.where(real, adv, 0.0)
    return adv, torch.where(real, adv + v, 0.0)


@dataclass
class TokenLoss:
    """`numerator`: the loss summed over masked tokens (with grad); `tokens`: how many; `clipped`: how many the
    clip took (TRL's `policy/clipfrac_avg`, `value/clipfrac_avg` numerators)."""

    numerator: torch.Tensor
    tokens: float
    clipped: float

    @property
    def mean(self) -> torch.Tensor:
        return self.numerator / self.tokens if self.tokens else self.numerator * 0.0


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *, cliprange: float
) -> TokenLoss:
    """PPO's clipped surrogate per token, `max(−A ρ, −A clip(ρ, 1 ± ε))`, summed over the mask."""
    real = mask.bool()
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach().to(logp.dtype)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    per_token = torch.where(real, torch.max(unclipped, clipped), 0.0)
    with torch.no_grad():
        took = float(((clipped > unclipped) & real).sum())
    return TokenLoss(per_token.sum(), float(real.sum()), took)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
    cliprange_value: float,
) -> TokenLoss:
    """PPO's clipped value loss per token, `½ max((V − R)², (clip(V, V_old ± ε_v) − R)²)`, summed over the mask."""
    real = mask.bool()
    old, ret = old_values.detach().to(values.dtype), returns.detach().to(values.dtype)
    clipped_v = torch.clamp(values, old - cliprange_value, old + cliprange_value)
    l1, l2 = (values - ret).square(), (clipped_v - ret).square()
    per_token = torch.where(real, 0.5 * torch.max(l1, l2), 0.0)
    with torch.no_grad():
        took = float(((l2 > l1) & real).sum())
    return TokenLoss(per_token.sum(), float(real.sum()), took)

"""The GRPO objective: group-relative advantages and the clipped, KL-regularised policy-gradient loss.

Advantages (`group_advantages`). A prompt's G replies form a group; a reply's advantage is its reward minus the
group's mean reward, optionally divided by a spread (`--scale-rewards`):

- `group`: the group's standard deviation (DeepSeekMath's GRPO, Shao et al. 2024);
- `batch`: the standard deviation of every reward in the batch (as TRL's `scale_rewards="batch"`);
- `none`: nothing, the advantage stays `r − mean` (Dr. GRPO, Liu et al. 2025: dividing by the group std gives
  questions with nearly-equal rewards, too easy or too hard, the largest weight).

`--advantage` picks the baseline (`compute_advantages`):

- `group` (default): the group-relative advantage above.
- `rloo` (REINFORCE Leave-One-Out, Ahmadian et al. 2024; TRL's RLOOTrainer): `r_i − mean_{j≠i} r_j`, the mean of
  the *other* G − 1 replies, an unbiased baseline (the reply's own reward is not in it). No division: TRL's default
  `normalize_advantages=False`.
- `reinforce++` (Hu 2025; OpenRLHF's `reinforce`): no per-prompt baseline; the batch's token returns are whitened
  globally, `(r − μ) / σ` with μ, σ² the mean and (biased) variance over every reply *token* of the step — each
  token's return is its reply's reward (γ = 1; kat keeps the KL as the loss term, not in the reward), so a reply
  weighs by its length — and `σ² ≥ 1e-8` as OpenRLHF clamps it. Needs the whole step's rewards and lengths.

`--scale-rewards` is `group`'s option; the other two refuse a value other than its default.

The std estimator is the unbiased one (divisor n − 1), and the divisor is `std + 1e-4`: both as TRL, so kat's
advantages and `reward_std` match TRL's logs for the same rewards. A group whose rewards are all exactly equal
carries no preference between its replies and gets advantage exactly 0: in float32 the mean of equal rewards can
miss them by 1 ulp, which `group` would turn into advantages of ±6e-4 (1 ulp / 1e-4). `frac_reward_zero_std` is
the fraction of such groups.

Loss (`grpo_loss`). Per reply token, with `ratio = exp(logπ − logπ_old)` and advantage A of its reply:

    surrogate = min(ratio · A, clip(ratio, 1 − ε, 1 + ε_high) · A)        (PPO's clip; ε_high > ε is DAPO's clip-higher)
    kl        = exp(q) − q − 1,  q = logπ_ref − logπ                      (Schulman's k3 estimator, ≥ 0, unbiased)
    per-token loss = −surrogate + β · kl

and the per-token losses are reduced by `--loss-type`:

- `grpo`: mean over each reply's tokens, then mean over replies (DeepSeekMath). Long replies' tokens weigh less.
- `dr_grpo`: sum over all reply tokens / (replies × max_new_tokens) (Dr. GRPO): a constant normaliser, so no
  per-reply length bias.
- `dapo`: sum over all reply tokens / number of reply tokens in the batch (DAPO, Yu et al. 2025, token-level
  policy gradient): every token weighs the same, whichever reply it is in.

Why the loss is handed back as (numerator, denominator): under gradient accumulation and DDP a step's batch is
split into micro-batches over ranks, and the normaliser belongs to the whole step. `grpo` and `dr_grpo` divide by
a count of replies, so per-micro-batch means are right only when every micro-batch holds as many replies; `dapo`
divides by the number of reply tokens of the step, and averaging per-micro-batch token means would weigh a token
in a micro-batch of short replies more than one in a micro-batch of long replies: exactly the length bias DAPO
removes. So each micro-batch contributes `numerator` (a differentiable sum) and
`denominator` (its share of the count, known from the rollout masks before any forward pass); the training loop
sums the denominators over micro-batches and ranks first (`loss_denominator` on each micro-batch's mask, then an
all-reduce) and passes the total as `denominator=`. With DDP averaging gradients over `world_size` ranks, that
loop passes `total / world_size`.

Pure functions of tensors: nothing here knows models, rollouts, rewards' origin, ranks or optimizers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from katcli.errors import ConfigError
from katcli.train.loss_names import (
    ADV_GROUP, ADV_REINFORCE_PP, ADV_RLOO, ADVANTAGES, LOSS_DAPO, LOSS_DR_GRPO, LOSS_GRPO, LOSS_TYPES, SCALE_BATCH,
    SCALE_GROUP, SCALE_NONE, SCALE_REWARDS,
)

STD_EPS = 1e-4  # TRL's: keeps a near-constant group's advantages finite
VAR_FLOOR = 1e-8  # OpenRLHF's clamp on the batch variance (reinforce++)


@dataclass(frozen=True)
class GRPOConfig:
    """The loss and advantage flags of `kat train grpo`; each check names its flag."""

    group_size: int = 8
    scale_rewards: str = SCALE_GROUP
    loss_type: str = LOSS_DAPO
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: symmetric clip, = epsilon
    beta: float = 0.0
    num_iterations: int = 1
    advantage: str = ADV_GROUP

    def __post_init__(self) -> None:
        self.validate()

    @property
    def eps_high(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def validate(self) -> None:
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(
                f"unknown --scale-rewards {self.scale_rewards!r}", hint=f"choose one of {', '.join(SCALE_REWARDS)}"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"unknown --loss-type {self.loss_type!r}", hint=f"choose one of {', '.join(LOSS_TYPES)}")
        if self.advantage not in ADVANTAGES:
            raise ConfigError(f"unknown --advantage {self.advantage!r}", hint=f"choose one of {', '.join(ADVANTAGES)}")
        if self.advantage != ADV_GROUP and self.scale_rewards != SCALE_GROUP:
            raise ConfigError(
                f"--scale-rewards {self.scale_rewards} only applies to --advantage group, not --advantage "
                f"{self.advantage}",
                hint="rloo uses the raw leave-one-out difference; reinforce++ whitens over the whole batch itself",
            )
        if self.group_size < 2:
            why = (
                "--scale-rewards group would divide by the spread of a single reward"
                if self.scale_rewards == SCALE_GROUP
                else "every advantage would be 0 and nothing would be learned"
            )
            raise ConfigError(
                f"--group-size must be at least 2, got {self.group_size}: a reply's advantage is its reward minus "
                f"its group's mean, so a group of one has no variance ({why})",
                hint="use --group-size 4 or more (GRPO papers use 8 to 64)",
            )
        if not 0 < self.epsilon < 1:
            raise ConfigError(
                f"--epsilon must be in (0, 1), got {self.epsilon}: the clip keeps ratios in [1 − ε, 1 + ε]",
                hint="PPO's usual value is 0.2",
            )
        if self.epsilon_high is not None and not self.epsilon_high >= self.epsilon:
            raise ConfigError(
                f"--epsilon-high ({self.epsilon_high}) is below --epsilon ({self.epsilon})",
                hint="--epsilon-high widens the upper clip (DAPO uses 0.28 with --epsilon 0.2); omit it for a "
                "symmetric clip",
            )
        if not self.beta >= 0:
            raise ConfigError(f"--beta must be 0 or positive, got {self.beta}", hint="0 turns the KL penalty off")
        if self.num_iterations < 1:
            raise ConfigError(
                f"--num-iterations must be at least 1, got {self.num_iterations}",
                hint="1 is fully on-policy: one gradient step per rollout batch",
            )


# ------------------------------------------------------------------------------------------------- advantages


@dataclass
class Advantages:
    """Per-reply advantages `[n·G]` (rows grouped by prompt, as the Engine returns them) and group statistics."""

    advantages: torch.Tensor
    zero_std: torch.Tensor  # [n] bool: the group's rewards are all equal
    frac_reward_zero_std: float
    reward_mean: float
    reward_std: float  # mean over groups of the group's std (what TRL logs as `reward_std` under `group`)


def _std(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return x.std() if dim is None else x.std(dim=dim)  # unbiased (n − 1), as TRL


def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = SCALE_GROUP) -> Advantages:
    """Advantages of `rewards` `[n·G]`, where rows `k·G … k·G+G−1` are prompt k's replies.

    Under `batch`, `rewards` must be the whole step's rewards (gathered from every rank): the batch std is global.
    """
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"unknown scale_rewards {scale_rewards!r}")
    if group_size < 2:
        raise ValueError("group_size must be at least 2")
    r = rewards.detach().reshape(-1)
    if r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    grouped = r.view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    group_std = _std(grouped, dim=1)
    if scale_rewards == SCALE_GROUP:
        centred = centred / (group_std[:, None] + STD_EPS)
    elif scale_rewards == SCALE_BATCH:
        centred = centred / (_std(r) + STD_EPS)
    zero_std = (grouped == grouped[:, :1]).all(dim=1)
    centred = centred.masked_fill(zero_std[:, None], 0.0)
    return Advantages(
        advantages=centred.reshape(-1),
        zero_std=zero_std,
        frac_reward_zero_std=float(zero_std.float().mean()),
        reward_mean=float(r.mean()),
        reward_std=float(group_std.mean()),
    )


def _grouped(rewards: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(flat rewards, `[n, G]` view, `[n]` all-equal flags), checked."""
    if group_size < 2:
        raise ValueError("group_size must be at least 2")
    r = rewards.detach().reshape(-1)
    if r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    grouped = r.view(-1, group_size)
    return r, grouped, (grouped == grouped[:, :1]).all(dim=1)


def _advantages(flat: torch.Tensor, r: torch.Tensor, grouped: torch.Tensor, zero_std: torch.Tensor) -> Advantages:
    return Advantages(
        advantages=flat, zero_std=zero_std, frac_reward_zero_std=float(zero_std.float().mean()),
        reward_mean=float(r.mean()), reward_std=float(_std(grouped, dim=1).mean()),
    )


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> Advantages:
    """RLOO: each reply's reward minus the mean reward of the other G − 1 replies to its prompt.

    A group whose rewards are all equal gets exactly 0 (as `group_advantages`), not a rounding residue."""
    r, grouped, zero_std = _grouped(rewards, group_size)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)
    adv = (grouped - baseline).masked_fill(zero_std[:, None], 0.0)
    return _advantages(adv.reshape(-1), r, grouped, zero_std)


def reinforce_pp_advantages(rewards: torch.Tensor, lengths: torch.Tensor, group_size: int) -> Advantages:
    """REINFORCE++: rewards whitened over every reply token of the batch (`lengths` `[n·G]`: reply tokens).

    `rewards` must be the whole step's (gathered from every rank): μ and σ are global."""
    r, grouped, zero_std = _grouped(rewards, group_size)
    w = lengths.detach().reshape(-1).to(r.dtype)
    if w.shape != r.shape:
        raise ValueError(f"{w.numel()} lengths for {r.numel()} rewards")
    total = w.sum()
    if not total > 0:
        return _advantages(torch.zeros_like(r), r, grouped, zero_std)
    mean = (w * r).sum() / total
    var = (w * (r - mean).square()).sum() / total
    return _advantages((r - mean) * var.clamp(min=VAR_FLOOR).rsqrt(), r, grouped, zero_std)


def compute_advantages(rewards: torch.Tensor, lengths: torch.Tensor, config: GRPOConfig) -> Advantages:
    """The step's advantages under `--advantage` (and `--scale-rewards` for `group`)."""
    if config.advantage == ADV_RLOO:
        return rloo_advantages(rewards, config.group_size)
    if config.advantage == ADV_REINFORCE_PP:
        return reinforce_pp_advantages(rewards, lengths, config.group_size)
    return group_advantages(rewards, config.group_size, config.scale_rewards)


# ------------------------------------------------------------------------------------------------- loss


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimate of KL(π ‖ π_ref) per token: `exp(q) − q − 1`, `q = logπ_ref − logπ` (≥ 0)."""
    q = ref_logp - logp
    return torch.exp(q) - q - 1


def loss_denominator(mask: torch.Tensor, loss_type: str, *, max_new_tokens: int) -> float:
    """This micro-batch's share of the loss normaliser; sum it over micro-batches and ranks for the step's total.

    `grpo`: replies (each reply's tokens are averaged first); `dr_grpo`: replies × max_new_tokens; `dapo`: reply
    tokens. Replies are counted only when they have at least one token (a padded row adds nothing).
    """
    m = mask.detach()
    if loss_type == LOSS_DAPO:
        return float(m.sum())
    replies = float((m.sum(dim=1) > 0).sum())
    if loss_type == LOSS_GRPO:
        return replies
    if loss_type == LOSS_DR_GRPO:
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be positive")
        return replies * max_new_tokens
    raise ValueError(f"unknown loss_type {loss_type!r}")


@dataclass
class GRPOLoss:
    """`loss = numerator / denominator`; `sums` are token-summed statistics over `tokens` reply tokens."""

    loss: torch.Tensor
    numerator: torch.Tensor
    denominator: float
    # Tensors on the batch's device, never read back here: a float() per statistic per micro-batch would stall
    # the GPU; the loop reads every statistic of a step in one transfer.
    sums: dict[str, torch.Tensor]
    tokens: torch.Tensor

    def stats(self) -> dict[str, float]:
        """Per-token means under TRL's names (`clip_ratio/low_mean`, `clip_ratio/high_mean`,
        `clip_ratio/region_mean`, `kl` when a reference was given)."""
        tokens = float(self.tokens)
        n = tokens if tokens > 0 else float("nan")
        return {name: float(value) / n for name, value in self.sums.items()}


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    config: GRPOConfig,
    *,
    max_new_tokens: int,
    denominator: float | None = None,
) -> GRPOLoss:
    """The GRPO loss of one (micro-)batch of replies.

    `logp` `[B, T]` the policy's per-token log-probs of the sampled reply tokens (with grad); `old_logp` the
    sampling policy's (None: the on-policy case, `logp` detached, so every ratio is 1 and only its gradient
    counts); `ref_logp` the reference model's (None: no KL, needs β = 0); `advantages` `[B]`; `mask` `[B, T]` 1 on
    reply tokens. `denominator`: the step's total normaliser (see the module docstring); None uses this batch's own.
    """
    if logp.dim() != 2 or mask.shape != logp.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and mask {tuple(mask.shape)} must be the same [B, T]")
    if advantages.shape != (logp.size(0),):
        raise ValueError(f"advantages {tuple(advantages.shape)} must be [B] = [{logp.size(0)}]")
    if config.beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs the reference model's log-probs")
    m = mask.to(logp.dtype)
    old = logp.detach() if old_logp is None else old_logp.detach()
    ratio = torch.exp(logp - old)
    clipped = torch.clamp(ratio, 1.0 - config.epsilon, 1.0 + config.eps_high)
    adv = advantages.detach().to(logp.dtype)[:, None]
    real = mask.bool()
    # `where`, not a product with the mask: padding may hold any log-prob, and inf · 0 would poison the sums.
    per_token = torch.where(real, -torch.min(ratio * adv, clipped * adv), 0.0)
    kl = None
    if ref_logp is not None:
        kl = torch.where(real, k3_kl(logp, ref_logp.detach()), 0.0)
        if config.beta > 0:
            per_token = per_token + config.beta * kl

    if config.loss_type == LOSS_GRPO:
        lengths = m.sum(dim=1)
        numerator = (per_token.sum(dim=1) / lengths.clamp(min=1.0)).sum()
    else:
        numerator = per_token.sum()
    # Counting this batch's own normaliser reads the mask back to the host: only when none was given.
    denom = loss_denominator(mask, config.loss_type, max_new_tokens=max_new_tokens) if denominator is None \
        else float(denominator)
    loss = numerator / denom if denom > 0 else numerator * 0.0

    with torch.no_grad():
        # A token is clipped where the min picks the clipped term: its gradient is zero (TRL's definitions).
        low = (ratio < 1.0 - config.epsilon) & (adv < 0) & real
        high = (ratio > 1.0 + config.eps_high) & (adv > 0) & real
        sums = {
            "clip_ratio/low_mean": low.sum(),
            "clip_ratio/high_mean": high.sum(),
            "clip_ratio/region_mean": (low | high).sum(),
        }
        if kl is not None:
            sums["kl"] = kl.sum()
    return GRPOLoss(loss=loss, numerator=numerator, denominator=denom, sums=sums, tokens=m.sum().detach())

"""The PPO objective: one reply per prompt, a separate critic, KL in the reward, GAE, clipped updates over minibatches.

Items are unique training prompts, as GRPO's. `prepare(step, prompts)` is the rollout, through the same KV-cache
Engine and per-reply seeds as GRPO (`rollout_seed(seed, step, prompt id, 0)`), scored by the frozen reward model
(`katcli.train.objectives.grpo.rollout_rewards`, the one place a planted test flips the reward's sign). Then,
without gradients: the sampling policy's log-probs and the critic's values (a training-mode forward, `logπ_old`,
`V_old`), the reference's log-probs, the per-token rewards `−β·kl + score on the last token`, GAE, and the
advantages whitened over every reply token of the *global* batch (the statistics are summed over ranks).

The critic is a separate model (`PolicyAndCritic.critic`, kat's reward-model class: a GPT and a scalar head, here
read at every reply position), as TRL's PPOTrainer, OpenRLHF and InstructGPT have it; the pipeline initialises it
from the reward model when that shares the policy's tokenizer (TRL's and OpenRLHF's default), else from the
starting policy with a zero head. Why separate and not a value head on the policy: the value loss then never
moves the policy's weights (no `vf_coef` trade-off inside one trunk), the policy checkpoint stays a plain GPT
(usable as `--init` anywhere), and the critic starts knowing what the reward model rewards. One optimizer trains
both (one learning rate, as TRL); the critic's weights travel in the optimizer file (`training_state`), so
`--resume` restores them.

Each step makes `ppo_epochs × num_minibatches` updates (the loop's passes): epoch e shuffles the step's global
rows by a seeded permutation (`seed, step, e`) and splits them into minibatches, so which rows share an update does
not depend on the number of ranks; a rank with no row in a minibatch runs one zero-weight row, so every rank takes
part in every update. Each update's loss is `policy + vf_coef × value`, averaged over its reply tokens.

Step metrics (TRL's names): objective/scores, objective/kl, objective/non_score_reward, objective/rlhf_reward,
loss/policy_avg, loss/value_avg, policy/clipfrac_avg, val/clipfrac_avg, policy/approxkl_avg, policy/entropy_avg,
plus GRPO's reward (= objective/scores), reward/qK_mean, completions/*. This module knows the models, the Engine,
rewards and the losses; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from katcli.model.engine import Engine, SamplingConfig
from katcli.model.gpt import GPT
from katcli.model.logprobs import logprobs_from_hidden
from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.metrics import N_QUINTILES
from katcli.train.metrics_log import rounded
from katcli.train.objective import Stats, ratio
from katcli.train.objectives import grpo as grpo_objective
from katcli.train.ppo_losses import PPOConfig, gae, kl_penalty_rewards, masked_whiten, policy_loss, value_loss
from katcli.train.reward_model import RewardModel
from katcli.train.rollout import Rollout, rollout_seed
from katcli.train.rollout import rollout_logprobs as ref_reply_logprobs
from katcli.model.run_meta import POLICY_KIND


class PolicyAndCritic(nn.Module):
    """The trained pair: one forward gives the policy's and the critic's final hidden states (DDP wraps this)."""

    def __init__(self, policy: GPT, critic: RewardModel) -> None:
        super().__init__()
        self.policy = policy
        self.critic = critic

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.policy(ids, pad_mask=pad_mask, return_hidden=True),
                self.critic.gpt(ids, pad_mask=pad_mask, return_hidden=True))


def logprobs_and_values(
    model: nn.Module, ro: Rollout, *, with_entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`[B, L]` reply-token log-probs, the critic's values at the positions that predict them, and (optionally)
    the policy's entropy there; 0 off the reply mask. `model` is a `PolicyAndCritic`, maybe wrapped in DDP."""
    inner = model.module if hasattr(model, "module") else model
    ids, real = ro.ids.to(inner.device), ro.real.to(inner.device)
    h_pol, h_val = model(ids, pad_mask=None if bool(real.all()) else real)
    P, L = ro.prompt_width, ro.completion.size(1)
    out = logprobs_from_hidden(h_pol[:, P - 1 : P + L], ids[:, P - 1 : P + L], inner.policy.logits_from_hidden,
                               with_entropy=with_entropy)
    logp, entropy = out if with_entropy else (out, None)
    values = inner.critic.head(h_val[:, P - 1 : P - 1 + L].float()).squeeze(-1)
    mask = ro.mask.to(inner.device).bool()
    ent = torch.where(mask, entropy[:, 1:], 0.0) if entropy is not None else None
    return torch.where(mask, logp[:, 1:], 0.0), torch.where(mask, values, 0.0), ent


@dataclass
class PPOMicro:
    rollout: Rollout
    old_logp: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor  # [rows, L], whitened
    returns: torch.Tensor  # [rows, L]
    pass_index: int  # the update (epoch × minibatch) it belongs to
    weight: float  # 0.0: a stand-in row so that this rank joins an update it has no row of


def minibatch_of(step_seed: Sequence[int], n_rows: int, num_minibatches: int) -> np.ndarray:
    """The minibatch of each of a step's `n_rows` global rows for one epoch: a seeded shuffle cut in M parts."""
    perm = np.random.default_rng(list(step_seed)).permutation(n_rows)
    where = np.empty(n_rows, dtype=np.int64)
    where[perm] = np.arange(n_rows)
    return where * num_minibatches // max(n_rows, 1)


class PPOObjective:
    kind = POLICY_KIND

    def __init__(
        self, gpt: GPT, critic: RewardModel, tokenizer: Any, *, prompts: Sequence[Any],
        prompt_tokens: Sequence[Sequence[int]], prompt_ids: Sequence[str], scorer: Any, config: PPOConfig,
        sampling: SamplingConfig, seed: int, ref: GPT | None = None, quintiles: Sequence[int] | None = None,
        evaluator: Any = None, dist: DistContext | None = None, progress: ProgressFn = no_progress,
        stop_token_ids: Sequence[int] | None = None,
    ) -> None:
        if config.kl_coef > 0 and ref is None:
            raise ValueError("a KL penalty needs a reference model")
        self.gpt = gpt
        self.critic = critic
        self.module = PolicyAndCritic(gpt, critic)
        self.prepare_runs_model = True
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.prompt_tokens = [list(p) for p in prompt_tokens]
        self.prompt_ids = list(prompt_ids)
        self.scorer = scorer
        self.config = config
        self.sampling = SamplingConfig(**{**sampling.__dict__, "num_samples": 1})
        self.seed = int(seed)
        self.ref = ref.eval().requires_grad_(False) if ref is not None else None
        self.quintiles = np.asarray(quintiles, dtype=np.int64) if quintiles is not None else None
        self.evaluator = evaluator
        self.stop_token_ids = stop_token_ids  # None: the tokenizer's (<|assistant_end|>, <|bos|>)
        self.dist = dist or DistContext(device=gpt.device)
        self.progress = progress
        self.passes = config.ppo_epochs * config.num_minibatches
        self._step_metrics: dict[str, Any] = {}
        # Wall-clock splits (never in metrics.jsonl): the last step's, and the run's totals.
        self._last: dict[str, float] = {}
        self._totals = dict.fromkeys(("rollout_s", "reward_s", "value_s", "reference_s", "rollout_tokens"), 0.0)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    # ---------------------------------------------------------------------------------------------- rollout

    def _rollout(self, step: int, items: np.ndarray) -> tuple[Rollout, torch.Tensor]:
        prompts = [self.prompt_tokens[int(i)] for i in items]
        seeds = [rollout_seed(self.seed, step, self.prompt_ids[int(i)], 0) for i in items]
        t0 = time.perf_counter()
        engine = Engine(self.gpt, self.tokenizer, stop_token_ids=self.stop_token_ids)
        gen = engine.generate(prompts, self.sampling, row_seeds=seeds)
        t1 = time.perf_counter()
        ro = Rollout.from_generation(prompts, gen)
        texts = [self.tokenizer.decode(gen.completion(r)) for r in range(gen.tokens.size(0))]
        scores = grpo_objective.rollout_rewards(self.scorer, [self.prompts[int(i)] for i in items], texts)
        self._last = {"rollout_s": t1 - t0, "reward_s": time.perf_counter() - t1, "value_s": 0.0, "reference_s": 0.0}
        self._totals["rollout_tokens"] += float(ro.mask.sum())
        return ro, torch.as_tensor(np.asarray(scores, dtype=np.float64))

    def _global_sum(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor(list(values), dtype=torch.float64, device=self.dist.device)
        self.dist.all_reduce_sum(t)
        return t.cpu().tolist()

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[PPOMicro]:
        cfg = self.config
        items = np.asarray(items, dtype=np.int64)
        ro, scores = self._rollout(step, items)
        mask = ro.mask.bool()
        old_logp, old_values, ref_logp = [], [], []
        with torch.no_grad():
            for lo in range(0, ro.ids.size(0), max(1, micro_batch_size)):
                part = ro.rows(slice(lo, lo + max(1, micro_batch_size)))
                t0 = time.perf_counter()
                lp, v, _ = logprobs_and_values(self.module, part)
                old_logp.append(lp.cpu())
                old_values.append(v.cpu())
                t1 = time.perf_counter()
                if self.ref is not None:
                    ref_logp.append(ref_reply_logprobs(self.ref, part).cpu())  # type: ignore[union-attr]
                self._last["value_s"] += t1 - t0  # the old policy's log-probs and the critic's values: one forward
                self._last["reference_s"] += time.perf_counter() - t1
        for key in ("rollout_s", "reward_s", "value_s", "reference_s"):
            self._totals[key] += self._last[key]
        logp = torch.cat(old_logp).double()
        values = torch.cat(old_values).double()
        ref = torch.cat(ref_logp).double() if ref_logp else logp
        rewards, kl = kl_penalty_rewards(scores, logp, ref, mask, kl_coef=cfg.kl_coef, estimator=cfg.kl_estimator)
        adv, ret = gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
        n, s = self._global_sum([float(mask.sum()), float(torch.where(mask, adv, 0.0).sum())])
        mean = torch.tensor(s / n, dtype=torch.float64)
        (sq,) = self._global_sum([float(torch.where(mask, (adv - mean).square(), 0.0).sum())])
        var = torch.tensor(sq / (n - 1) if n > 1 else 0.0, dtype=torch.float64)
        adv = masked_whiten(adv, mask, mean=mean, var=var)
        self._step_metrics = self._rollout_metrics(items, ro, scores, kl)
        return self._micros(step, ro, logp, values, adv, ret, micro_batch_size)

    def _micros(self, step: int, ro: Rollout, logp: torch.Tensor, values: torch.Tensor, adv: torch.Tensor,
                ret: torch.Tensor, micro_batch_size: int) -> list[PPOMicro]:
        W, r = self.dist.world_size, self.dist.rank
        local = ro.ids.size(0)
        (n_rows,) = self._global_sum([float(local)])
        positions = r + W * np.arange(local)  # the global batch's positions this rank holds (`sampler.shard`)
        per = max(1, int(micro_batch_size))
        micros: list[PPOMicro] = []
        for e in range(self.config.ppo_epochs):
            mb = minibatch_of((self.seed, step, e), int(n_rows), self.config.num_minibatches)[positions]
            for k in range(self.config.num_minibatches):
                rows = np.flatnonzero(mb == k)
                weight = 1.0
                if not len(rows):  # take part in the update with a zero-weight row (DDP needs every rank)
                    rows, weight = np.array([0]), 0.0
                for lo in range(0, len(rows), per):
                    idx = torch.from_numpy(rows[lo : lo + per])
                    micros.append(PPOMicro(ro.rows(idx), logp[idx], values[idx], adv[idx], ret[idx],
                                           e * self.config.num_minibatches + k, weight))
        return micros

    def _rollout_metrics(self, items: np.ndarray, ro: Rollout, scores: torch.Tensor, kl: torch.Tensor) -> dict:
        kl_sum = kl.sum(dim=1)
        nonscore = -self.config.kl_coef * kl_sum
        local = [float(len(items)), float(scores.sum()), float(kl_sum.sum()), float(nonscore.sum()),
                 float(ro.lengths.sum()), float(ro.truncated.sum())]
        q = [0.0] * (2 * N_QUINTILES)
        if self.quintiles is not None:
            for j, i in enumerate(items):
                k = int(self.quintiles[int(i)])
                q[k] += float(scores[j])
                q[N_QUINTILES + k] += 1.0
        tot = self._global_sum(local + q)
        n = tot[0]
        out: dict[str, Any] = {
            "reward": rounded(tot[1] / n), "objective/scores": rounded(tot[1] / n),
            "objective/kl": rounded(tot[2] / n), "objective/non_score_reward": rounded(tot[3] / n),
            "objective/rlhf_reward": rounded((tot[1] + tot[3]) / n),
        }
        if self.quintiles is not None:
            for k in range(N_QUINTILES):
                c = tot[6 + N_QUINTILES + k]
                out[f"reward/q{k + 1}_mean"] = rounded(tot[6 + k] / c) if c else None
        out["completions/mean_length"] = rounded(tot[4] / n)
        out["completions/clipped_ratio"] = rounded(tot[5] / n)
        out["prompts"] = int(n)
        return out

    # ---------------------------------------------------------------------------------------------- loss

    def pass_micros(self, micros: Sequence[PPOMicro], pass_index: int) -> list[PPOMicro]:
        return [m for m in micros if m.pass_index == pass_index]

    def loss_denominator(self, micros: Sequence[PPOMicro]) -> float:
        return float(sum(m.weight * float(m.rollout.mask.sum()) for m in micros))

    def loss(self, model: torch.nn.Module, mb: PPOMicro, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        cfg, device = self.config, self.gpt.device
        logp, values, entropy = logprobs_and_values(model, mb.rollout, with_entropy=True)
        mask = mb.rollout.mask.to(device)
        old = mb.old_logp.to(device, logp.dtype)
        pl = policy_loss(logp, old, mb.advantages.to(device), mask, cliprange=cfg.cliprange)
        vl = value_loss(values, mb.old_values.to(device, values.dtype), mb.returns.to(device), mask,
                        cliprange_value=cfg.cliprange_value)
        total = (pl.numerator + cfg.vf_coef * vl.numerator) * mb.weight
        w = mb.weight
        real = mask.bool()
        approxkl = torch.where(real, 0.5 * (logp - old).detach().square(), 0.0).sum()
        stats: Stats = {
            "pg_sum": pl.numerator.detach() * w, "vf_sum": vl.numerator.detach() * w, "reply_tokens": pl.tokens * w,
            "pg_clipped": pl.clipped * w, "vf_clipped": vl.clipped * w, "approxkl": approxkl * w,
            "entropy": entropy.detach().sum() * w if entropy is not None else 0.0,
            "tokens": int(mb.rollout.real.sum()) if w else 0,
            "pad_tokens": int(mb.rollout.real.numel() - mb.rollout.real.sum()) if w else 0,
        }
        return total, stats

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        n = sums["reply_tokens"]
        out = dict(self._step_metrics)
        out["loss"] = rounded(ratio(sums["pg_sum"] + self.config.vf_coef * sums["vf_sum"], n))
        out["loss/policy_avg"] = rounded(ratio(sums["pg_sum"], n))
        out["loss/value_avg"] = rounded(ratio(sums["vf_sum"], n))
        out["policy/clipfrac_avg"] = rounded(ratio(sums["pg_clipped"], n))
        out["val/clipfrac_avg"] = rounded(ratio(sums["vf_clipped"], n))
        out["policy/approxkl_avg"] = rounded(ratio(sums["approxkl"], n))
        out["policy/entropy_avg"] = rounded(ratio(sums["entropy"], n))
        return out

    # ---------------------------------------------------------------------------------------------- timings

    def live_stats(self) -> dict[str, float]:
        """The last step's wall-clock split (for the live line; never written to metrics.jsonl)."""
        return dict(self._last)

    def run_stats(self, *, update_seconds: float) -> dict[str, float]:
        """The run's wall-clock split, for the manifest: rollout, reward, value (+ old log-probs), reference,
        updates."""
        t = self._totals
        return {
            "time_rollout_s": round(t["rollout_s"], 3), "time_reward_s": round(t["reward_s"], 3),
            "time_value_s": round(t["value_s"], 3), "time_reference_s": round(t["reference_s"], 3),
            "time_update_s": round(max(0.0, update_seconds), 3),
            "rollout_tokens_per_s": round(t["rollout_tokens"] / t["rollout_s"], 1) if t["rollout_s"] > 0 else 0.0,
        }

    # ---------------------------------------------------------------------------------------------- eval, state

    def evaluate(self, step: int) -> Any:
        return grpo_objective.evaluate_policy(self.evaluator, self.gpt)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.gpt.state_dict().items()}

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.gpt.load_state_dict(dict(state), strict=True)

    def training_state(self) -> dict[str, Any]:
        return {"critic": {k: v.detach().clone() for k, v in self.critic.checkpoint_state().items()}}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.critic.load_checkpoint_state({k: v.float() for k, v in state["critic"].items()})

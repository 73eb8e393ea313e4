"""The GRPO objective: roll out groups of replies, score them with a frozen reward model, take clipped PG steps.

Items are unique training prompts. `prepare(step, prompts)` is the rollout: G replies per prompt from the current
policy with the KV-cache Engine, every reply seeded by `rollout_seed(seed, step, prompt id, sample)` (`row_seeds`),
so a resumed or resharded run regenerates exactly the same replies; the replies' texts are scored by the reward
model (`rollout_rewards`, through `katcli.train.rm_scoring`); advantages come from `compute_advantages` (group,
rloo or reinforce++) over the
*global* batch (each rank's rewards are summed into one step-wide table, so `--scale-rewards batch` sees every
reward and every rank reports the same step statistics for any world size). Then, without gradients, the
reference's per-token log-probs (β > 0) and, when a rollout is reused for several updates (`--num-iterations` > 1),
the sampling policy's log-probs recomputed by a training-mode forward (`logπ_old`; with one update the ratio is
exactly 1 and `grpo_loss` uses the detached current log-probs, as TRL does).

`loss` is `grpo_loss`'s numerator (the step's normaliser comes from `loss_denominator` over the micro-batches, summed
over ranks by the loop): each pass of `passes = --num-iterations` is one optimizer update over the same micro-batches.

Step metrics (TRL's names where TRL has one): reward, reward_std (mean group std), per density quintile of the
step's prompts reward/qK_mean and reward/qK_std, frac_reward_zero_std, kl (k3, with a reference), clip_ratio/*,
entropy, completions/mean_length, completions/max_length, completions/clipped_ratio (truncated replies). Wall-clock
splits (rollout, scoring, log-prob passes) are kept out of the metrics (they are not reproducible) and exposed
through `live_stats` / `run_stats`.

This module knows the policy, the Engine, rewards and the loss; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from katcli.model.engine import Engine, SamplingConfig
from katcli.model.gpt import GPT
from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.fsdp import release
from katcli.train.grpo_losses import (
    GRPOConfig,
    compute_advantages,
    grpo_loss,
    loss_denominator,
)
from katcli.model.run_meta import POLICY_KIND
from katcli.train.metrics import N_QUINTILES
from katcli.train.metrics_log import rounded
from katcli.train.objective import Stats, load_module_state, module_state, ratio
from katcli.train.rollout import Rollout, rollout_logprobs, rollout_seed

Messages = Sequence[Mapping[str, Any]]
Scorer = Callable[[Sequence[Messages], Sequence[str]], np.ndarray]


def rollout_rewards(scorer: Scorer, prompts: Sequence[Messages], replies: Sequence[str]) -> np.ndarray:
    """The reward of each rollout reply. One function, so the planted tests can flip the reward's sign here."""
    return scorer(prompts, replies)


@dataclass
class GRPOMicro:
    """One micro-batch of rollout rows (whole groups) with what the loss needs beside the policy's log-probs."""

    rollout: Rollout
    advantages: torch.Tensor  # [rows]
    old_logp: torch.Tensor | None  # [rows, L]; None: on-policy (one update per rollout)
    ref_logp: torch.Tensor | None  # [rows, L]; None: no KL term


class GRPOObjective:
    kind = POLICY_KIND

    def __init__(
        self,
        gpt: GPT,
        tokenizer: Any,
        *,
        prompts: Sequence[Messages],
        prompt_tokens: Sequence[Sequence[int]],
        prompt_ids: Sequence[str],
        scorer: Scorer,
        config: GRPOConfig,
        sampling: SamplingConfig,
        seed: int,
        ref: GPT | None = None,
        quintiles: Sequence[int] | None = None,
        evaluator: Any = None,
        stop_token_ids: Sequence[int] | None = None,
        dist: DistContext | None = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        if config.beta > 0 and ref is None:
            raise ValueError("beta > 0 needs a reference model")
        self.gpt = gpt
        self.module = gpt
        self.prepare_runs_model = True  # rollouts: under --fsdp the loop gathers the weights for `prepare`
        self.tokenizer = tokenizer
        self.prompts = list(prompts)
        self.prompt_tokens = [list(p) for p in prompt_tokens]
        self.prompt_ids = list(prompt_ids)
        self.scorer = scorer
        self.config = config
        self.sampling = SamplingConfig(**{**sampling.__dict__, "num_samples": config.group_size})
        self.seed = int(seed)
        self.ref = ref.eval().requires_grad_(False) if ref is not None else None
        self.quintiles = np.asarray(quintiles, dtype=np.int64) if quintiles is not None else None
        self.evaluator = evaluator
        self.stop_token_ids = stop_token_ids  # None: the tokenizer's (<|assistant_end|>, <|bos|>)
        self.dist = dist or DistContext(device=gpt.device)
        self.progress = progress
        self.passes = config.num_iterations
        self._step_metrics: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._totals = {"rollout_s": 0.0, "scoring_s": 0.0, "logprob_s": 0.0, "rollout_tokens": 0.0}

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.gpt.parameters() if p.requires_grad]

    # ---------------------------------------------------------------------------------------------- rollout

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[GRPOMicro]:
        G = self.config.group_size
        items = np.asarray(items, dtype=np.int64)
        prompts = [self.prompt_tokens[int(i)] for i in items]
        seeds = [rollout_seed(self.seed, step, self.prompt_ids[int(i)], k) for i in items for k in range(G)]
        t0 = time.perf_counter()
        engine = Engine(self.gpt, self.tokenizer, stop_token_ids=self.stop_token_ids)
        gen = engine.generate(prompts, self.sampling, row_seeds=seeds)
        t1 = time.perf_counter()
        ro = Rollout.from_generation(prompts, gen)
        texts = [self.tokenizer.decode(gen.completion(r)) for r in range(gen.tokens.size(0))]
        rewards = rollout_rewards(self.scorer, [self.prompts[int(i)] for i in items for _ in range(G)], texts)
        t2 = time.perf_counter()
        table = self._global_table(items, rewards, ro)
        adv = compute_advantages(table[:, :, 0].reshape(-1).float(), table[:, :, 1].reshape(-1), self.config)
        self._step_metrics = self._rollout_metrics(table, adv)
        mine = adv.advantages.view(-1, G)[self.dist.rank :: self.dist.world_size].reshape(-1)

        micros: list[GRPOMicro] = []
        per = max(1, int(micro_batch_size)) * G
        with torch.no_grad():
            for lo in range(0, ro.ids.size(0), per):
                part = ro.rows(slice(lo, lo + per))
                old = rollout_logprobs(self.gpt, part) if self.passes > 1 else None
                ref = None
                if self.ref is not None:
                    ref = rollout_logprobs(self.ref, part)
                    release(self.ref)  # under --fsdp: back to this rank's shard after each micro-batch
                micros.append(GRPOMicro(part, mine[lo : lo + per], old, ref))  # type: ignore[arg-type]
        t3 = time.perf_counter()
        tokens = float(ro.mask.sum())
        self._last = {
            "rollout_s": t1 - t0, "scoring_s": t2 - t1, "logprob_s": t3 - t2,
            "rollout_tokens_per_s": tokens / (t1 - t0) if t1 > t0 else 0.0,
        }
        for key in ("rollout_s", "scoring_s", "logprob_s"):
            self._totals[key] += self._last[key]
        self._totals["rollout_tokens"] += tokens
        return micros

    def _global_table(self, items: np.ndarray, rewards: np.ndarray, ro: Rollout) -> torch.Tensor:
        """`[prompts of the step, G, 4]` float64 (reward, length, truncated, quintile + 1) summed over ranks.

        Rank r's prompts are the global batch's positions r, r + W, … (`sampler.shard`), so the table is the one a
        single process would build."""
        G, W = self.config.group_size, self.dist.world_size
        n = len(items)
        table = torch.zeros(n * W, G, 4, dtype=torch.float64, device=self.dist.device)
        local = torch.zeros(n, G, 4, dtype=torch.float64)
        local[:, :, 0] = torch.from_numpy(np.asarray(rewards, dtype=np.float64)).view(n, G)
        local[:, :, 1] = ro.lengths.double().view(n, G)
        local[:, :, 2] = ro.truncated.double().view(n, G)
        if self.quintiles is not None:
            local[:, :, 3] = torch.from_numpy(self.quintiles[items] + 1).double()[:, None]
        table[self.dist.rank :: W] = local.to(table.device)
        self.dist.all_reduce_sum(table)
        return table.cpu()

    def _rollout_metrics(self, table: torch.Tensor, adv: Any) -> dict[str, Any]:
        rewards, lengths = table[:, :, 0], table[:, :, 1]
        out: dict[str, Any] = {
            "reward": rounded(float(rewards.mean())),
            "reward_std": rounded(adv.reward_std),
            "frac_reward_zero_std": rounded(adv.frac_reward_zero_std),
        }
        if self.quintiles is not None:
            quint = table[:, 0, 3].long() - 1
            for q in range(N_QUINTILES):
                r = rewards[quint == q].reshape(-1)
                out[f"reward/q{q + 1}_mean"] = rounded(float(r.mean())) if r.numel() else None
                out[f"reward/q{q + 1}_std"] = rounded(float(r.std())) if r.numel() > 1 else None
        out["completions/mean_length"] = rounded(float(lengths.mean()))
        out["completions/max_length"] = int(lengths.max())
        out["completions/clipped_ratio"] = rounded(float(table[:, :, 2].mean()))
        out["prompts"] = int(table.size(0))
        return out

    # ---------------------------------------------------------------------------------------------- loss

    def loss_denominator(self, micros: Sequence[GRPOMicro]) -> float:
        mnt = self.sampling.max_new_tokens
        return float(sum(loss_denominator(mb.rollout.mask, self.config.loss_type, max_new_tokens=mnt) for mb in micros))

    def loss(self, model: torch.nn.Module, mb: GRPOMicro, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        ro = mb.rollout
        device = self.gpt.device
        logp, entropy = rollout_logprobs(model, ro, with_entropy=True)
        mask = ro.mask.to(device)
        out = grpo_loss(
            logp, None if mb.old_logp is None else mb.old_logp.to(device),
            None if mb.ref_logp is None else mb.ref_logp.to(device), mb.advantages.to(device), mask, self.config,
            max_new_tokens=self.sampling.max_new_tokens, denominator=1.0,
        )
        real = int(ro.real.sum())  # the rollout's tensors are on the CPU: no device sync
        own = loss_denominator(ro.mask, self.config.loss_type, max_new_tokens=self.sampling.max_new_tokens)
        stats: Stats = {
            "loss_sum": out.numerator.detach(), "loss_den": own, "reply_tokens": out.tokens, "entropy": entropy.detach().sum(), **out.sums,
            "tokens": real, "pad_tokens": ro.real.numel() - real,
        }
        return out.numerator, stats

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        n = sums["reply_tokens"]
        out = dict(self._step_metrics)
        out["loss"] = rounded(ratio(sums["loss_sum"], sums["loss_den"]))
        out["kl"] = rounded(ratio(sums["kl"], n)) if "kl" in sums else None
        for key in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
            out[key] = rounded(ratio(sums[key], n))
        out["entropy"] = rounded(ratio(sums["entropy"], n))
        out["replies"] = out.get("prompts", 0) * self.config.group_size
        return out

    # ---------------------------------------------------------------------------------------------- timings

    def live_stats(self) -> dict[str, float]:
        """The last step's wall-clock split (for the live line; never written to metrics.jsonl)."""
        return dict(self._last)

    def run_stats(self, *, update_seconds: float) -> dict[str, float]:
        """The run's wall-clock split, for the manifest: rollout, scoring, log-prob passes, updates."""
        t = self._totals
        return {
            "time_rollout_s": round(t["rollout_s"], 3), "time_scoring_s": round(t["scoring_s"], 3),
            "time_logprob_s": round(t["logprob_s"], 3),
            "time_update_s": round(max(0.0, update_seconds), 3),
            "rollout_tokens_per_s": round(t["rollout_tokens"] / t["rollout_s"], 1) if t["rollout_s"] > 0 else 0.0,
        }

    # ---------------------------------------------------------------------------------------------- eval, state

    def evaluate(self, step: int) -> Any:
        return evaluate_policy(self.evaluator, self.gpt)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return module_state(self.gpt)

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        load_module_state(self.gpt, state)


def evaluate_policy(evaluator: Any, policy: torch.nn.Module) -> Any:
    """An on-policy objective's held-out evaluation (None without an evaluator), the policy's train mode restored."""
    if evaluator is None:
        return None
    was_training = policy.training
    try:
        return evaluator.evaluate(policy)
    finally:
        policy.train(was_training)

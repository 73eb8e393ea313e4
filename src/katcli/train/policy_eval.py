"""Held-out reward of a policy during RL: greedy and sampled replies to fixed held-out prompts, scored by the RM.

The prompt set is fixed for a run (`pick_eval_prompts`: a seeded hash order of the held-out prompts, the first N),
and so are the sampled replies' seeds (`rollout_seed` on an `eval:` prompt key, the same at every evaluation), so
two evaluations of a run differ only by the policy. Each prompt gets one greedy reply (temperature 0) and K sampled
ones (the run's temperature / top-k / top-p); every reply is scored by the frozen reward model
(`katcli.train.rm_scoring`). The report holds the mean greedy and sampled reward and reply length overall, per source
and per density quintile, cut where the whole held-out set is cut (`katcli.train.metrics.quintile_edges`), so
GRPO's few evaluation prompts fall in the quintiles `kat eval` and the report use. Under torchrun each rank
generates every `world_size`-th prompt and the results are summed across ranks, so all ranks hold the full report.

This module knows the Engine, rewards and reports; not files, flags or the training loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from katcli.model.engine import Engine, SamplingConfig
from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.metrics import GroupedReport
from katcli.train.metrics_log import rounded
from katcli.train.rollout import rollout_seed

Scorer = Callable[[Sequence[Sequence[Mapping[str, Any]]], Sequence[str]], np.ndarray]


def pick_eval_prompts(prefix_ids: Sequence[str], n: int, *, seed: int) -> list[int]:
    """Positions of at most `n` distinct prompts, chosen by a seeded hash (independent of order and weights)."""
    first: dict[str, int] = {}
    for i, pid in enumerate(prefix_ids):
        first.setdefault(pid, i)
    order = sorted(first, key=lambda pid: hashlib.sha256(f"kat-policy-eval:{seed}:{pid}".encode()).digest())
    return sorted(first[pid] for pid in order[:n])


@dataclass
class RewardGroup:
    """Summed rewards and lengths of the held-out replies of one group of prompts."""

    n: int
    greedy_sum: float
    sampled_sum: float
    samples: int
    greedy_len_sum: float
    sampled_len_sum: float

    def to_json(self) -> dict[str, Any]:
        def mean(total: float, count: int) -> float | None:
            return rounded(total / count) if count else None

        return {
            "n": self.n,
            "greedy_reward": mean(self.greedy_sum, self.n),
            "sampled_reward": mean(self.sampled_sum, self.samples),
            "greedy_length": mean(self.greedy_len_sum, self.n),
            "sampled_length": mean(self.sampled_len_sum, self.samples),
        }


@dataclass
class RewardReport(GroupedReport):
    """Held-out reward of a policy (`RewardGroup`s): overall, per source and per density quintile."""

    headline: ClassVar[str] = "reward"


class PolicyEvaluator:
    """Greedy + sampled replies of a policy to fixed held-out prompts, scored by a reward model."""

    def __init__(
        self,
        tokenizer: Any,
        scorer: Scorer,
        prompts: Sequence[Sequence[Mapping[str, Any]]],
        prompt_tokens: Sequence[Sequence[int]],
        prefix_ids: Sequence[str],
        sources: Sequence[str],
        *,
        sampling: SamplingConfig,
        samples: int,
        seed: int,
        weights: Mapping[str, float] | None = None,
        edges: Sequence[float] | None = None,  # the held-out set's quintile edges (`quintile_edges`)
        batch_size: int = 32,
        dist: DistContext | None = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.tokenizer = tokenizer
        self.scorer = scorer
        self.prompts = list(prompts)
        self.prompt_tokens = [list(p) for p in prompt_tokens]
        self.prefix_ids = list(prefix_ids)
        self.sources = list(sources)
        self.sampling = sampling
        self.samples = int(samples)
        self.seed = int(seed)
        self.weights = weights if weights is not None and all(p in weights for p in self.prefix_ids) else None
        self.edges = None if edges is None else list(edges)
        self.batch_size = int(batch_size)
        self.dist = dist or DistContext()
        self.progress = progress

    def _replies(
        self, engine: Engine, rows: list[int], cfg: SamplingConfig, seeds: list[int] | None
    ) -> tuple[list[str], list[float]]:
        """Reply texts (stop token dropped) and their token lengths (stop token counted, as in training)."""
        gen = engine.generate([self.prompt_tokens[i] for i in rows], cfg, row_seeds=seeds)
        texts = [self.tokenizer.decode(gen.completion(r)) for r in range(gen.tokens.size(0))]
        return texts, gen.mask.sum(dim=1).double().tolist()

    @torch.no_grad()
    def evaluate(self, model: Any) -> RewardReport:
        n, K = len(self.prompts), self.samples
        device = model.device
        # Per prompt: greedy reward, greedy length, then K sampled rewards and K sampled lengths.
        table = torch.zeros(n, 2 + 2 * K, dtype=torch.float64, device=device)
        engine = Engine(model, self.tokenizer)
        mine = list(range(self.dist.rank, n, self.dist.world_size))
        done = 0
        for lo in range(0, len(mine), self.batch_size):
            rows = mine[lo : lo + self.batch_size]
            greedy, greedy_len = self._replies(engine, rows, SamplingConfig(**{**self.sampling.__dict__, "temperature": 0.0,
                                                                   "num_samples": 1}), None)
            seeds = [rollout_seed(self.seed, 0, f"eval:{self.prefix_ids[i]}", k) for i in rows for k in range(K)]
            sampled, sampled_len = self._replies(engine, rows, SamplingConfig(**{**self.sampling.__dict__, "num_samples": K}), seeds)
            r_greedy = self.scorer([self.prompts[i] for i in rows], greedy)
            r_sampled = self.scorer([self.prompts[i] for i in rows for _ in range(K)], sampled)
            for j, i in enumerate(rows):
                table[i, 0], table[i, 1] = float(r_greedy[j]), greedy_len[j]
                table[i, 2 : 2 + K] = torch.from_numpy(r_sampled[j * K : (j + 1) * K])
                table[i, 2 + K :] = torch.tensor(sampled_len[j * K : (j + 1) * K], dtype=torch.float64)
            done += len(rows)
            self.progress("evaluating", done, len(mine))
        self.dist.all_reduce_sum(table)
        return self._report(table.cpu().numpy())

    def _report(self, table: np.ndarray) -> RewardReport:
        K = self.samples

        def group(mask: np.ndarray) -> RewardGroup:
            t = table[mask]
            return RewardGroup(
                n=int(mask.sum()), greedy_sum=float(t[:, 0].sum()), sampled_sum=float(t[:, 2 : 2 + K].sum()),
                samples=int(mask.sum()) * K, greedy_len_sum=float(t[:, 1].sum()),
                sampled_len_sum=float(t[:, 2 + K :].sum()),
            )

        return RewardReport.grouped(group, self.sources, self.prefix_ids, self.weights, self.edges)

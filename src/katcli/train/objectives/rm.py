"""The reward-model objective: chosen and rejected through one forward, Bradley–Terry on the reward difference.

Items are training pairs. A micro-batch is `[2m, T]` (the m chosen sequences, then the m rejected ones); the loss
is the pairs' summed `pair_loss` (Bradley–Terry plus optional reward centering) and the step's loss is its mean
over the pairs of the global batch. Statistics: loss, Bradley–Terry loss, accuracy, margin, reward mean/std.
Evaluation: held-out accuracy overall, per source and per density quintile (`katcli.train.evaluate`).

This module knows the reward model and its loss; not files, flags or the loop's mechanics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from katcli.model.run_meta import RM_KIND
from katcli.train.batching import MicroBatch
from katcli.train.evaluate import evaluate
from katcli.train.metrics import EvalReport
from katcli.train.metrics_log import rounded
from katcli.train.objective import Stats, ratio
from katcli.train.objectives.encoded import EncodedObjective
from katcli.train.reward_model import RewardModel
from katcli.train.rm_sft_losses import pair_loss
from katcli.train.sequences import EncodedPairs


class RewardModelObjective(EncodedObjective):
    kind = RM_KIND

    def __init__(self, rm: RewardModel, enc: EncodedPairs, *, center_coef: float = 0.0, **shared: Any) -> None:
        super().__init__(rm, enc, **shared)
        self.rm = rm
        self.center_coef = center_coef

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[MicroBatch]:
        return [mb for _, mb in self.collated(items, micro_batch_size)]

    def loss_denominator(self, micros: Sequence[MicroBatch]) -> float:
        return float(sum(mb.n_pairs for mb in micros))

    def loss(self, model: torch.nn.Module, mb: MicroBatch, *, pass_index: int) -> tuple[torch.Tensor, Stats]:
        device = next(self.rm.parameters()).device
        ids = torch.from_numpy(mb.ids).to(device, non_blocking=True)
        lengths = torch.from_numpy(mb.lengths).to(device, non_blocking=True)
        rewards = model(ids, lengths)
        m = mb.n_pairs
        pl = pair_loss(rewards[:m], rewards[m:], center_coef=self.center_coef)
        r = rewards.detach().double()
        stats: Stats = {
            "loss": pl.total, "bt_loss": pl.bradley_terry, "correct": pl.correct, "margin": pl.margin,
            "reward_sum": r, "reward_sq": r.square(), "pairs": m,
            "tokens": mb.real_tokens, "pad_tokens": mb.pad_tokens,
        }
        return pl.total.sum(), stats

    def summarize(self, sums: Mapping[str, float]) -> dict[str, Any]:
        n = sums["pairs"]
        mean_r = ratio(sums["reward_sum"], 2 * n)
        return {
            "loss": rounded(ratio(sums["loss"], n)),
            "bt_loss": rounded(ratio(sums["bt_loss"], n)),
            "accuracy": rounded(ratio(sums["correct"], n)),
            "margin": rounded(ratio(sums["margin"], n)),
            "reward_mean": rounded(mean_r),
            "reward_std": rounded(math.sqrt(max(0.0, ratio(sums["reward_sq"], 2 * n) - mean_r * mean_r))),
            "pairs": int(n),
        }

    def evaluate(self, step: int) -> EvalReport | None:
        if self.heldout is None:
            return None
        h = self.heldout
        device = next(self.rm.parameters()).device
        return evaluate(
            self.rm, self.enc, h.indices, sources=h.sources, prefix_ids=h.prefix_ids, weights=h.weights,
            batch_size=self.eval_batch_size, pad_id=self.pad_id, device=device, dist=self.dist, progress=self.progress,
        )

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return self.rm.checkpoint_state()

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.rm.load_checkpoint_state(state)

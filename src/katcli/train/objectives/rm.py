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

from katcli.train.batching import MicroBatch, collate, split_micro
from katcli.train.evaluate import evaluate
from katcli.train.losses import pair_loss
from katcli.train.metrics import EvalReport
from katcli.train.metrics_log import rounded
from katcli.train.objective import HeldOut, Stats, ratio
from katcli.train.reward_model import RewardModel
from katcli.train.run_dir import RM_KIND
from katcli.train.sequences import EncodedPairs


class RewardModelObjective:
    kind = RM_KIND
    passes = 1

    def __init__(
        self,
        rm: RewardModel,
        enc: EncodedPairs,
        *,
        pad_id: int,
        center_coef: float = 0.0,
        pad_to: int | None = None,
        heldout: HeldOut | None = None,
        eval_batch_size: int = 32,
        dist: Any = None,
        progress: Any = None,
    ) -> None:
        self.rm = rm
        self.module = rm
        self.enc = enc
        self.pad_id = pad_id
        self.center_coef = center_coef
        self.pad_to = pad_to
        self.heldout = heldout
        self.eval_batch_size = eval_batch_size
        self.dist = dist
        self.progress = progress

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return self.rm.trainable_parameters()

    def prepare(self, step: int, items: np.ndarray, *, micro_batch_size: int) -> Sequence[MicroBatch]:
        return [collate(self.enc, idx, pad_id=self.pad_id, pad_to=self.pad_to) for idx in split_micro(items, micro_batch_size)]

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
        kwargs = {"progress": self.progress} if self.progress is not None else {}
        return evaluate(
            self.rm, self.enc, h.indices, sources=h.sources, prefix_ids=h.prefix_ids, weights=h.weights,
            batch_size=self.eval_batch_size, pad_id=self.pad_id, device=device, dist=self.dist, **kwargs,
        )

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return self.rm.checkpoint_state()

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.rm.load_checkpoint_state(state)

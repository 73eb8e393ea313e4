"""Scoring held-out pairs with a reward model: per-pair margins and losses, optionally split across ranks.

Pairs are scored in length-sorted batches without gradients. Under torchrun each rank scores every
`world_size`-th batch and the margins are summed across ranks (each pair is scored by exactly one rank, the others
contribute zeros), so every rank ends with the full, identical result. The numbers are then summarised by
`katcli.train.metrics`. This module knows models and batches, not files or rendering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from typing import Any

import numpy as np
import torch

from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.metrics import EvalReport, summarize
from katcli.train.reward_model import RewardModel
from katcli.train.rm_sft_losses import bradley_terry
from katcli.train.seq_scoring import indexed_eval_batches, score_batches
from katcli.train.sequences import EncodedPairs


@torch.no_grad()
def score_pairs(
    rm: RewardModel,
    enc: EncodedPairs,
    indices: Sequence[int],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dist: DistContext | None = None,
    progress: ProgressFn = no_progress,
    task: str = "evaluating",
) -> tuple[np.ndarray, np.ndarray]:
    """(margins `r_c − r_r`, rewards `[n, 2]`) for distinct `indices`, in the order given.

    The batches and their split over ranks are `katcli.train.seq_scoring.score_batches`' (the loop summed reply
    log-probs use too), with each sequence's reward as its value (`rewards_of`).
    """
    idx = np.asarray(indices, dtype=np.int64)

    def rewards_of(mb: Any) -> tuple[torch.Tensor, torch.Tensor]:
        r = rm(torch.from_numpy(mb.ids).to(device), torch.from_numpy(mb.lengths).to(device)).double()
        return r, torch.ones_like(r)

    was_training = rm.training
    rm.eval()
    try:
        rewards, _ = score_batches(
            len(idx), 2, indexed_eval_batches(enc, idx, batch_size=batch_size, pad_id=pad_id), rewards_of,
            device=device, dist=dist, progress=progress, task=task,
        )
    finally:
        rm.train(was_training)
    return rewards[:, 0] - rewards[:, 1], rewards


def evaluate(
    rm: RewardModel,
    enc: EncodedPairs,
    indices: Sequence[int],
    *,
    sources: Sequence[str],
    prefix_ids: Sequence[str],
    weights: Mapping[str, float] | None,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dist: DistContext | None = None,
    progress: ProgressFn = no_progress,
) -> EvalReport:
    """Accuracy overall / per source / per density quintile of `indices` (sources and prefix ids per index)."""
    margins, rewards = score_pairs(
        rm, enc, indices, batch_size=batch_size, pad_id=pad_id, device=device, dist=dist, progress=progress
    )
    losses = bradley_terry(torch.from_numpy(rewards[:, 0]), torch.from_numpy(rewards[:, 1])).numpy()
    report = summarize(margins, losses, sources, prefix_ids, weights)
    report.extra["reward_mean"] = round(float(rewards.mean()), 6) if len(rewards) else None
    report.extra["reward_std"] = round(float(rewards.std()), 6) if len(rewards) else None
    return report

"""Scoring held-out pairs with a reward model: per-pair margins and losses, optionally split across ranks.

Pairs are scored in length-sorted batches without gradients. Under torchrun each rank scores every
`world_size`-th batch and the margins are summed across ranks (each pair is scored by exactly one rank, the others
contribute zeros), so every rank ends with the full, identical result. The numbers are then summarised by
`katcli.train.metrics`. This module knows models and batches, not files or rendering.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import eval_batches
from katcli.train.ddp import DistContext
from katcli.train.losses import bradley_terry
from katcli.train.metrics import EvalReport, summarize
from katcli.train.reward_model import RewardModel
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
    """(margins `r_c − r_r`, rewards `[n, 2]`) for distinct `indices`, in the order given."""
    dist = dist or DistContext(device=device)
    idx = np.asarray(indices, dtype=np.int64)
    position = {int(i): k for k, i in enumerate(idx)}
    if len(position) != len(idx):
        raise ValueError("score_pairs needs distinct pair indices")
    rewards = torch.zeros(len(idx), 2, dtype=torch.float64, device=device)
    was_training = rm.training
    rm.eval()
    done = 0
    try:
        for b, (chunk, mb) in enumerate(eval_batches(enc, idx, batch_size=batch_size, pad_id=pad_id)):
            if b % dist.world_size == dist.rank:
                ids = torch.from_numpy(mb.ids).to(device)
                lengths = torch.from_numpy(mb.lengths).to(device)
                r = rm(ids, lengths).double()
                m = mb.n_pairs
                rows = torch.tensor([position[int(i)] for i in chunk], device=device)
                rewards[rows, 0] = r[:m]
                rewards[rows, 1] = r[m:]
            done += len(chunk)
            progress(task, done, len(idx))
    finally:
        rm.train(was_training)
    dist.all_reduce_sum(rewards)
    out = rewards.cpu().numpy()
    return out[:, 0] - out[:, 1], out


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

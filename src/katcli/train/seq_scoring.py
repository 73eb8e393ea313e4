"""Summed reply log-probabilities of encoded sequences under a policy, in length-sorted batches, over ranks.

For every requested row and each of its sequences (one reply, or chosen and rejected), the sum of the token
log-probs over the reply tokens (`response_mask`: the reply and its `<|assistant_end|>`) and their count. SFT's
held-out NLL, DPO's reference log-probs and implicit-reward evaluation all come from here. Under torchrun each rank
scores every `world_size`-th batch and the sums are added across ranks, so every rank ends with the full result.

This module knows models, batches and ranks; not losses, files or reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from katcli.model.logprobs import masked_sums, token_logprobs
from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import eval_batches
from katcli.train.ddp import DistContext
from katcli.train.sequences import EncodedSequences


@torch.no_grad()
def reply_logprobs(
    model: torch.nn.Module,
    enc: EncodedSequences,
    indices: Sequence[int],
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    dist: DistContext | None = None,
    progress: ProgressFn = no_progress,
    task: str = "scoring replies",
) -> tuple[np.ndarray, np.ndarray]:
    """(summed reply log-probs float64 `[n, k]`, reply token counts int64 `[n, k]`) for distinct `indices`."""
    dist = dist or DistContext(device=device)
    idx = np.asarray(indices, dtype=np.int64)
    position = {int(i): r for r, i in enumerate(idx)}
    if len(position) != len(idx):
        raise ValueError("reply_logprobs needs distinct row indices")
    k = enc.off.shape[1]
    sums = torch.zeros(len(idx), k, dtype=torch.float64, device=device)
    counts = torch.zeros(len(idx), k, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    done = 0
    try:
        for b, (chunk, mb) in enumerate(eval_batches(enc, idx, batch_size=batch_size, pad_id=pad_id)):
            if b % dist.world_size == dist.rank:
                ids = torch.from_numpy(mb.ids).to(device)
                mask = torch.from_numpy(mb.response_mask()).to(device)
                s, n = masked_sums(token_logprobs(model, ids), mask)  # type: ignore[arg-type]
                m = len(chunk)
                rows = torch.tensor([position[int(i)] for i in chunk], device=device)
                for j in range(k):
                    sums[rows, j] = s[j * m : (j + 1) * m].double()
                    counts[rows, j] = n[j * m : (j + 1) * m].double()
            done += len(chunk)
            progress(task, done, len(idx))
    finally:
        model.train(was_training)
    dist.all_reduce_sum(sums)
    dist.all_reduce_sum(counts)
    return sums.cpu().numpy(), counts.cpu().numpy().astype(np.int64)

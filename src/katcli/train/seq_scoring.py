"""Summed reply log-probabilities of encoded sequences under a policy, in length-sorted batches, over ranks.

For every requested row and each of its sequences (one reply, or chosen and rejected), the sum of the token
log-probs over the reply tokens (`response_mask`: the reply and its `<|assistant_end|>`) and their count. SFT's
held-out NLL, DPO's reference log-probs and implicit-reward evaluation all come from here. Under torchrun each rank
scores every `world_size`-th batch and the sums are added across ranks, so every rank ends with the full result.

`score_batches` is the loop itself, over any `(row positions, micro-batch)` batches and any `value_fn(micro-batch)
-> (values, token counts)`, so callers that must not depend on the model class (the reference log-prob cache) or
that score something else per sequence (a reward model's rewards, `katcli.train.evaluate`) use the same loop;
`summed_reply_logprobs` runs it with a policy over length-sorted batches.

This module knows models, batches and ranks; not losses, files or reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from katcli.model.logprobs import masked_sums, token_logprobs
from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import MicroBatch, eval_batches
from katcli.train.ddp import DistContext
from katcli.train.sequences import EncodedSequences

#: A micro-batch → (one value per sequence, its token count): summed reply log-probs, or a reward model's rewards.
ValueFn = Callable[[Any], tuple[Any, Any]]


def model_logprob_fn(model: torch.nn.Module, device: torch.device) -> ValueFn:
    """The `value_fn` of a policy: per row of a micro-batch, its summed reply log-prob and reply token count."""

    def fn(mb: MicroBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.from_numpy(mb.ids).to(device)
        mask = torch.from_numpy(mb.response_mask()).to(device)
        return masked_sums(token_logprobs(model, ids), mask)  # type: ignore[arg-type]

    return fn


@torch.no_grad()
def score_batches(
    n_rows: int,
    k: int,
    batches: Iterable[tuple[np.ndarray, Any]],
    value_fn: ValueFn,
    *,
    device: torch.device,
    dist: DistContext | None = None,
    progress: ProgressFn = no_progress,
    task: str = "scoring replies",
    lockstep: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(sums float64 `[n_rows, k]`, counts int64 `[n_rows, k]`) from batches covering rows `0 … n_rows−1` once each.

    `lockstep`: the model is sharded over the ranks (`--fsdp`), so every rank runs the same number of forwards.

    A batch is (its rows' positions, a micro-batch of `k·m` sequences: the m first ones, then the m second ones …);
    `value_fn(micro_batch)` returns each sequence's value (its summed log-prob, or a reward) and token count. A rank computes every
    `world_size`-th batch and the results are added across ranks in one all-reduce (a row's value plus zeros from
    the other ranks, which is exact).
    """
    dist = dist or DistContext(device=device)
    if lockstep:
        batches = list(batches)
    values = torch.zeros(n_rows, 2 * k, dtype=torch.float64, device=device)  # k sums, then k counts
    seen = np.zeros(n_rows, dtype=np.int64)
    done = 0
    progress(task, 0, n_rows)
    for b, (chunk, mb) in enumerate(batches):
        rows = np.asarray(chunk, dtype=np.int64)
        seen[rows] += 1
        m = len(rows)
        if b % dist.world_size == dist.rank:
            sums, counts = value_fn(mb)
            sums = torch.as_tensor(sums).to(device, torch.float64).reshape(-1)
            counts = torch.as_tensor(counts).to(device, torch.float64).reshape(-1)
            if sums.numel() != k * m or counts.numel() != k * m:
                raise ValueError(f"value_fn returned {sums.numel()} values for {m} rows of {k} sequences")
            values[torch.from_numpy(rows).to(device)] = torch.cat([sums.view(k, m).T, counts.view(k, m).T], dim=1)
        done += m
        progress(task, done, n_rows)
    if not (seen == 1).all():
        raise ValueError("the batches must cover every row exactly once")
    if lockstep and dist.distributed:
        # A sharded model's forward is a collective: every rank runs as many as the busiest one (results dropped).
        assert isinstance(batches, list)
        mine, rounds = len(range(dist.rank, len(batches), dist.world_size)), -(-len(batches) // dist.world_size)
        for _ in range(rounds - mine):
            value_fn(batches[0][1])
    dist.all_reduce_sum(values)
    out = values.cpu().numpy()
    return out[:, :k].copy(), out[:, k:].astype(np.int64)


def indexed_eval_batches(
    enc: EncodedSequences, indices: np.ndarray, *, batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, MicroBatch]]:
    """Length-sorted batches of the distinct rows `indices`, each with its rows' positions in `indices`."""
    position = {int(i): r for r, i in enumerate(indices)}
    if len(position) != len(indices):
        raise ValueError("scoring needs distinct row indices")
    for chunk, mb in eval_batches(enc, indices, batch_size=batch_size, pad_id=pad_id):
        yield np.array([position[int(i)] for i in chunk], dtype=np.int64), mb


@torch.no_grad()
def summed_reply_logprobs(
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
    idx = np.asarray(indices, dtype=np.int64)
    batches = indexed_eval_batches(enc, idx, batch_size=batch_size, pad_id=pad_id)
    was_training = model.training
    model.eval()
    try:
        return score_batches(
            len(idx), enc.off.shape[1], batches, model_logprob_fn(model, device), device=device, dist=dist,
            progress=progress, task=task,
        )
    finally:
        model.train(was_training)

"""Padding encoded pairs into the tensors one forward pass consumes, and counting the padding.

A micro-batch of m pairs becomes one `[2m, T]` array — the m chosen sequences, then the m rejected ones — right-
padded to the longest sequence in it (or to a fixed `pad_to`, the no-bucketing baseline). Right padding keeps the
model on its plain causal path: a real token never attends to a later pad, so pads change no reward. The pad
fraction (pad tokens / all tokens) is what length bucketing in the sampler keeps low.

Evaluation batches are sorted by length for the same reason. This module knows arrays; it does not know models,
sampling probabilities or tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from katcli.train.sequences import EncodedPairs


@dataclass
class MicroBatch:
    ids: np.ndarray  # int64 [2m, T]: rows [0, m) chosen, rows [m, 2m) rejected
    lengths: np.ndarray  # int64 [2m] real tokens per row
    n_pairs: int
    real_tokens: int
    pad_tokens: int

    @property
    def pad_fraction(self) -> float:
        total = self.real_tokens + self.pad_tokens
        return self.pad_tokens / total if total else 0.0


def collate(enc: EncodedPairs, indices: Sequence[int], *, pad_id: int, pad_to: int | None = None) -> MicroBatch:
    """Stack the chosen then the rejected sequences of `indices` into one right-padded array."""
    idx = np.asarray(indices, dtype=np.int64)
    m = len(idx)
    lengths = np.concatenate([enc.chosen_len[idx], enc.rejected_len[idx]])
    width = int(lengths.max()) if pad_to is None else int(pad_to)
    ids = np.full((2 * m, width), pad_id, dtype=np.int64)
    for row, i in enumerate(idx):
        c, r = enc.chosen(int(i)), enc.rejected(int(i))
        ids[row, : len(c)] = c
        ids[m + row, : len(r)] = r
    real = int(lengths.sum())
    return MicroBatch(ids, lengths, m, real, 2 * m * width - real)


def split_micro(indices: np.ndarray, micro_batch_size: int) -> list[np.ndarray]:
    """Consecutive chunks of at most `micro_batch_size` pairs (with bucketing, neighbours have similar lengths)."""
    return [indices[i : i + micro_batch_size] for i in range(0, len(indices), micro_batch_size)]


def eval_batches(
    enc: EncodedPairs, indices: Sequence[int], *, batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, MicroBatch]]:
    """Held-out pairs in batches of similar length; yields (the batch's pair indices, its micro-batch)."""
    idx = np.asarray(indices, dtype=np.int64)
    order = idx[np.argsort(enc.pair_lengths[idx], kind="stable")]
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        yield chunk, collate(enc, chunk, pad_id=pad_id)

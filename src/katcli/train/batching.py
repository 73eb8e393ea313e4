"""Padding encoded sequences into the tensors one forward pass consumes, with loss masks and pad counts.

A micro-batch of m rows with k sequences each becomes one `[k·m, T]` array — the m first sequences (chosen, or the
only reply), then the m second ones (rejected) — right-padded to the longest sequence in it (or to a fixed
`pad_to`, the no-bucketing baseline). Right padding keeps the model on its plain causal path: a real token never
attends to a later pad, so pads change no reward and no log-prob. `response_mask()` marks the tokens each row is
trained on: its response and the closing `<|assistant_end|>`, never prompt tokens or padding. The pad fraction
(pad tokens / all tokens) is what length bucketing in the sampler keeps low.

Evaluation batches are sorted by length for the same reason. This module knows arrays; it does not know models,
sampling probabilities or tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from katcli.train.sequences import EncodedSequences


@dataclass
class MicroBatch:
    ids: np.ndarray  # int64 [k·m, T]: rows [0, m) first sequences (chosen), rows [m, 2m) second ones (rejected)
    lengths: np.ndarray  # int64 [k·m] real tokens per row
    prompt_lens: np.ndarray  # int64 [k·m] where each row's response starts
    n_pairs: int  # m: encoded rows in the batch (pairs, or replies)
    real_tokens: int
    pad_tokens: int

    @property
    def pad_fraction(self) -> float:
        total = self.real_tokens + self.pad_tokens
        return self.pad_tokens / total if total else 0.0

    def response_mask(self) -> np.ndarray:
        """bool `[k·m, T]`: True on response tokens (and the closing end token) — what a policy is trained on."""
        pos = np.arange(self.ids.shape[1])[None, :]
        return (pos >= self.prompt_lens[:, None]) & (pos < self.lengths[:, None])

    @property
    def response_tokens(self) -> int:
        return int((self.lengths - self.prompt_lens).sum())


def collate(
    enc: EncodedSequences, indices: Sequence[int], *, pad_id: int, pad_to: int | None = None
) -> MicroBatch:
    """Stack sequence 0 of every row, then sequence 1 of every row, … into one right-padded array."""
    idx = np.asarray(indices, dtype=np.int64)
    m, k = len(idx), enc.off.shape[1]
    lengths = np.concatenate([enc.length[idx, j] for j in range(k)])
    prompt_lens = np.tile(enc.prompt_len[idx], k)
    width = int(lengths.max()) if pad_to is None else int(pad_to)
    ids = np.full((k * m, width), pad_id, dtype=np.int64)
    for j in range(k):
        for row, i in enumerate(idx):
            seq = enc.sequence(int(i), j)
            ids[j * m + row, : len(seq)] = seq
    real = int(lengths.sum())
    return MicroBatch(ids, lengths, prompt_lens, m, real, k * m * width - real)


def split_micro(indices: np.ndarray, micro_batch_size: int) -> list[np.ndarray]:
    """Consecutive chunks of at most `micro_batch_size` rows (with bucketing, neighbours have similar lengths)."""
    return [indices[i : i + micro_batch_size] for i in range(0, len(indices), micro_batch_size)]


def eval_batches(
    enc: EncodedSequences, indices: Sequence[int], *, batch_size: int, pad_id: int
) -> Iterator[tuple[np.ndarray, MicroBatch]]:
    """Held-out rows in batches of similar length; yields (the batch's row indices, its micro-batch)."""
    idx = np.asarray(indices, dtype=np.int64)
    order = idx[np.argsort(enc.row_lengths[idx], kind="stable")]
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        yield chunk, collate(enc, chunk, pad_id=pad_id)

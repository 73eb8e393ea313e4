"""What the objectives over encoded rows share (reward model, SFT, DPO): their data, padding and evaluation settings.

Their items are rows of one `EncodedSequences` (pairs, or replies); a step's micro-batches are consecutive slices of
this rank's items, collated and right-padded (`katcli.train.batching`). GRPO, whose items are prompts it rolls out
first, does not build on this. This module knows collation; not losses, models' internals or files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import MicroBatch, collate, split_micro
from katcli.train.objective import HeldOut
from katcli.train.sequences import EncodedSequences


class EncodedObjective:
    passes = 1

    def __init__(
        self,
        module: torch.nn.Module,
        enc: EncodedSequences,
        *,
        pad_id: int,
        pad_to: int | None = None,
        heldout: HeldOut | None = None,
        eval_batch_size: int = 32,
        dist: Any = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.module = module
        self.enc = enc
        self.pad_id = pad_id
        self.pad_to = pad_to  # every micro-batch padded to this width (the no-bucketing baseline); None: its longest
        self.heldout = heldout
        self.eval_batch_size = eval_batch_size
        self.dist = dist
        self.progress = progress

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def collated(self, items: np.ndarray, micro_batch_size: int) -> list[tuple[np.ndarray, MicroBatch]]:
        """(row indices, micro-batch) for consecutive slices of this rank's items."""
        return [
            (np.asarray(idx, dtype=np.int64), collate(self.enc, idx, pad_id=self.pad_id, pad_to=self.pad_to))
            for idx in split_micro(items, micro_batch_size)
        ]

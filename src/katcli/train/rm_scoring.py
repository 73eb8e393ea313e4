"""Scoring replies with a frozen reward model, the way it was trained: its own tokenizer, its own truncation.

A policy and its reward model may have different tokenizers, so a reply reaches the reward model as *text*: the
policy's completion is decoded, then `(conversation, reply text)` is rendered with the reward model's tokenizer
(`render_for_completion(prefix)` + reply + `<|assistant_end|>`), fitted into the reward model's `--max-len` by the
one truncation rule (`katcli.train.sequences.fit_responses`, through `encode_sequences`). Going through text also
when the tokenizers are the same keeps one path and gives the reward model the canonical encoding it was trained
on, not whatever token split a policy happened to sample.

`RewardScorer(rm, tokenizer, max_len=…, max_response_len=…)` holds those settings (read from the reward model's
meta by `RewardScorer.from_meta`); `scorer(prompts, replies)` returns one reward per (conversation, reply) in
length-sorted batches without gradients. `kat train grpo` (rollout rewards, held-out evaluation) and
`kat eval policy` use it: one way of scoring a reply, in which its reward never depends on any other reply.

This module knows reward models, tokenizers and sequences; not files, ranks, policies or losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from katcli.progress import ProgressFn, no_progress
from katcli.train.batching import eval_batches
from katcli.train.reward_model import RewardModel
from katcli.train.sequences import encode_sequences

Messages = Sequence[Mapping[str, Any]]


class RewardScorer:
    """Rewards of (conversation, reply text) pairs under one frozen reward model."""

    def __init__(
        self,
        rm: RewardModel,
        tokenizer: Any,
        *,
        max_len: int,
        max_response_len: int,
        batch_size: int = 32,
    ) -> None:
        self.rm = rm.eval()
        for p in self.rm.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_len = int(max_len)
        self.max_response_len = int(max_response_len)
        self.batch_size = int(batch_size)

    @classmethod
    def from_meta(cls, rm: RewardModel, tokenizer: Any, meta: Any, *, batch_size: int = 32) -> RewardScorer:
        """The scorer with the `--max-len` / `--max-response-len` the reward model was trained with (`RunMeta`)."""
        max_len, max_resp = meta.lengths()
        return cls(rm, tokenizer, max_len=max_len, max_response_len=max_resp, batch_size=batch_size)

    @torch.no_grad()
    def __call__(
        self, prompts: Sequence[Messages], replies: Sequence[str], *, progress: ProgressFn = no_progress,
        task: str = "scoring",
    ) -> np.ndarray:
        """float64 `[n]`: the reward of `replies[i]` as the answer to the conversation `prompts[i]`."""
        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
        out = np.zeros(len(replies), dtype=np.float64)
        if not replies:
            return out
        enc = encode_sequences(
            self.tokenizer, [(m, (r,)) for m, r in zip(prompts, replies)], max_len=self.max_len,
            max_response_len=self.max_response_len, task="scoring",
        )
        device = next(self.rm.parameters()).device
        done = 0
        for chunk, mb in eval_batches(enc, np.arange(len(replies)), batch_size=self.batch_size,
                                      pad_id=self.tokenizer.pad_token_id):
            ids = torch.from_numpy(mb.ids).to(device)
            lengths = torch.from_numpy(mb.lengths).to(device)
            out[chunk] = self.rm(ids, lengths).double().cpu().numpy()
            done += len(chunk)
            progress(task, done, len(replies))
        return out

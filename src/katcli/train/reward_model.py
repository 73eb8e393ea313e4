"""The reward model: kat's GPT plus a scalar head on the final hidden state of the last real token.

A batch holds chosen and rejected sequences together (`[2m, T]`, right-padded), so both go through one forward
pass and share one set of weights and normalisation. The reward of a row is `head · h[len − 1]`, where `h` is the
GPT's final normed hidden state; that token is always `<|assistant_end|>`, which has attended to the whole prompt
and reply. The head starts at zero, so every reward starts at 0 and the first loss is exactly log 2.

The GPT's `lm_head` is unused here; it is frozen (no gradient, no optimizer state, skipped by DDP) and kept only so
the transformer part of a reward-model checkpoint still has every GPT key. On disk the state is the GPT's own keys
plus `reward_head.weight`. This module knows the model; it does not know losses, data or files.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn as nn

from katcli.model.gpt import GPT, GPTConfig

HEAD_KEY = "reward_head.weight"


class RewardModel(nn.Module):
    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, 1, bias=False)
        nn.init.zeros_(self.head.weight)
        gpt.lm_head.weight.requires_grad_(False)

    @property
    def config(self) -> GPTConfig:
        return self.gpt.config

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Rewards `(N,)` in fp32 for right-padded `ids (N, T)` whose real lengths are `lengths (N,)`."""
        hidden = self.gpt(ids, return_hidden=True)
        rows = torch.arange(ids.size(0), device=ids.device)
        last = hidden[rows, lengths - 1]
        return self.head(last.float()).squeeze(-1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ---------------------------------------------------------------------------------------------- on-disk state

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """GPT keys unchanged plus `reward_head.weight`."""
        state = {k: v.detach() for k, v in self.gpt.state_dict().items()}
        state[HEAD_KEY] = self.head.weight.detach()
        return state

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        body = {k: v for k, v in state.items() if k != HEAD_KEY}
        self.gpt.load_state_dict(body, strict=True)
        with torch.no_grad():
            self.head.weight.copy_(state[HEAD_KEY])


def split_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(GPT state, head weight or None) of a checkpoint that may or may not be a reward model."""
    body = {k: v for k, v in state.items() if k != HEAD_KEY}
    return body, state.get(HEAD_KEY)

"""Rollout bookkeeping for on-policy RL: seeds per sampled reply, and sampled replies laid out for a training forward.

`rollout_seed(seed, step, prompt_id, sample)` derives one sampling seed per reply from the run's seed, the step,
the prompt's id and the reply's index in its group, by hashing (sha256, like the held-out split): a reply's seed
does not depend on which other prompts share its batch, on the batch order, on the number of ranks or on
PYTHONHASHSEED, so resuming or resharding a run samples the same replies. Feeding these seeds to the sampler is the
Engine's business (per-row seeding), not this module's.

`Rollout.from_generation(prompts, gen)` turns the Engine's output into what the loss needs: the prompt+reply token
rows for one teacher-forced forward (prompts left-padded exactly as the Engine pads them), the reply mask, the
sampling log-probs (`logπ_old`), reply lengths and truncation flags (a reply that hit `max_new_tokens` before its
stop token). `rollout_logprobs(model, rollout)` is the per-token log-prob of each sampled reply token under a model —
the policy's (with grad) or the reference's (without) — computing the head only on reply positions, in chunks
(`katcli.model.logprobs.logprobs_from_hidden`), optionally with the policy's entropy there.

This module knows token ids, the Engine's `Generation` and the GPT's forward; not rewards, losses or optimizers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from katcli.model.engine import Generation, left_pad
from katcli.model.logprobs import logprobs_from_hidden

SEED_BITS = 63  # fits torch.manual_seed, numpy's SeedSequence and a signed int64 tensor


def rollout_seed(seed: int, step: int, prompt_id: str | int, sample: int) -> int:
    """The sampling seed of reply `sample` to prompt `prompt_id` at 0-based optimizer `step` of a run seeded `seed`."""
    for name, value in (("seed", seed), ("step", step), ("sample", sample)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    # seed, step and sample are digits only, so the colon-separated text parses back uniquely even when the
    # prompt id itself contains colons: no two distinct tuples share a seed by construction of the key.
    key = f"kat-rollout:{seed}:{step}:{prompt_id}:{sample}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> (64 - SEED_BITS)


@dataclass
class Rollout:
    """n prompts × G replies as training rows; row r belongs to prompt `prompt_index[r]`.

    `ids` / `real` `[B, P + L]`: the left-padded prompt (P columns) then the reply (L columns, zeros after its
    end); `real` marks prompt and reply tokens. `mask` `[B, L]` is 1 on reply tokens (the stop token included).
    """

    ids: torch.Tensor
    real: torch.Tensor
    prompt_width: int
    completion: torch.Tensor
    mask: torch.Tensor
    old_logp: torch.Tensor
    lengths: torch.Tensor
    truncated: torch.Tensor
    prompt_index: torch.Tensor
    num_samples: int

    @classmethod
    def from_generation(cls, prompts: Sequence[Sequence[int]], gen: Generation) -> Rollout:
        n, G = len(prompts), gen.num_samples
        B, L = gen.tokens.shape
        if B != n * G:
            raise ValueError(f"{B} generated rows do not match {n} prompts × {G} samples")
        prompt, prompt_real = left_pad(prompts)
        P = prompt.size(1)
        index = gen.prompt_index.long()
        mask = gen.mask.bool()
        ids = torch.cat([prompt[index], torch.where(mask, gen.tokens, 0)], dim=1)
        real = torch.cat([prompt_real[index], mask], dim=1)
        return cls(
            ids=ids,
            real=real,
            prompt_width=P,
            completion=gen.tokens.long(),
            mask=mask.long(),
            old_logp=gen.logprobs.float(),
            lengths=mask.sum(dim=1),
            truncated=~gen.finished.bool() & (mask.sum(dim=1) > 0),
            prompt_index=index,
            num_samples=G,
        )

    @property
    def truncated_ratio(self) -> float:
        """TRL's `completions/clipped_ratio`: replies cut off by max_new_tokens."""
        return float(self.truncated.float().mean())

    @property
    def mean_length(self) -> float:
        return float(self.lengths.float().mean())

    def rows(self, index: torch.Tensor | slice) -> Rollout:
        """A micro-batch of rows (same layout, same widths)."""
        return Rollout(
            ids=self.ids[index], real=self.real[index], prompt_width=self.prompt_width,
            completion=self.completion[index], mask=self.mask[index], old_logp=self.old_logp[index],
            lengths=self.lengths[index], truncated=self.truncated[index], prompt_index=self.prompt_index[index],
            num_samples=self.num_samples,
        )


def rollout_logprobs(
    model: torch.nn.Module, rollout: Rollout, *, with_entropy: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`[B, L]` log-prob of each reply token under `model` (0 off the mask); differentiable through `model`.

    The hidden state at column P − 1 + t predicts reply token t, so the chunked head (`logprobs_from_hidden`, no
    `[B, L, vocab]` tensor kept) runs only on the L + 1 columns from P − 1. With `with_entropy`, also the policy's
    predictive entropy at each reply token (0 off the mask). `model` may be wrapped in DDP.
    """
    inner = model.module if hasattr(model, "module") else model
    device = inner.device
    ids, real = rollout.ids.to(device), rollout.real.to(device)
    pad_mask = None if bool(real.all()) else real
    hidden = model(ids, pad_mask=pad_mask, return_hidden=True)
    P, L = rollout.prompt_width, rollout.completion.size(1)
    out = logprobs_from_hidden(
        hidden[:, P - 1 : P + L], ids[:, P - 1 : P + L], inner.logits_from_hidden, with_entropy=with_entropy
    )
    mask = rollout.mask.to(device).bool()
    if with_entropy:
        logp, entropy = out
        return torch.where(mask, logp[:, 1:], 0.0), torch.where(mask, entropy[:, 1:], 0.0)
    assert isinstance(out, torch.Tensor)
    return torch.where(mask, out[:, 1:], 0.0)

"""Per-token log-probabilities of a batch of sequences, without a full fp32 `[B, T, vocab]` tensor.

`logp[b, t] = log p(ids[b, t] | ids[b, :t])` for t ≥ 1 (position 0 has no prediction and is 0). The hidden states
come from one forward pass; the vocabulary projection, softmax and gather then run over chunks of positions, so at
most `[B, chunk, vocab]` logits exist at a time. Under autograd each chunk is recomputed in the backward pass
(activation checkpointing) instead of being kept, so training memory stays at the hidden states' size too — with a
32k vocabulary and 512 tokens that is the difference between 64 MB and 2 GB per 32 rows.

Every objective that needs sequence log-probs (SFT's NLL, DPO's policy and reference log-probs, GRPO's ratios and
KL) calls this one function. It knows a model only as "hidden states" plus "head"; nothing about losses or data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

DEFAULT_CHUNK = 128

Head = Callable[[torch.Tensor], torch.Tensor]


def _chunk_logprobs(hidden: torch.Tensor, targets: torch.Tensor, head: Head) -> torch.Tensor:
    logits = head(hidden).float()
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


def _chunk_logprobs_entropy(hidden: torch.Tensor, targets: torch.Tensor, head: Head) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all = F.log_softmax(head(hidden).float(), dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return torch.gather(logp_all, -1, targets.unsqueeze(-1)).squeeze(-1), entropy


def logprobs_from_hidden(
    hidden: torch.Tensor,
    ids: torch.Tensor,
    head: Head,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    with_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Token log-probs `(B, T)` (and, with `with_entropy`, the predictive entropy at each position, `(B, T)`)."""
    B, T = ids.shape
    out = hidden.new_zeros(B, T, dtype=torch.float32)
    ent = hidden.new_zeros(B, T, dtype=torch.float32) if with_entropy else None
    grad = torch.is_grad_enabled() and hidden.requires_grad
    for lo in range(0, T - 1, chunk_size):
        hi = min(lo + chunk_size, T - 1)
        h, tgt = hidden[:, lo:hi], ids[:, lo + 1 : hi + 1]
        if with_entropy:
            fn = _chunk_logprobs_entropy
            lp, e = checkpoint(fn, h, tgt, head, use_reentrant=False) if grad else fn(h, tgt, head)
            assert ent is not None
            ent[:, lo + 1 : hi + 1] = e
        else:
            fn2 = _chunk_logprobs
            lp = checkpoint(fn2, h, tgt, head, use_reentrant=False) if grad else fn2(h, tgt, head)
        out[:, lo + 1 : hi + 1] = lp
    return (out, ent) if ent is not None else out


def token_logprobs(
    model: torch.nn.Module,
    ids: torch.Tensor,
    *,
    pad_mask: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    with_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Token log-probs of kat's GPT (or anything with `forward(ids, return_hidden=True)` + `logits_from_hidden`).

    Right-padded rows need no `pad_mask` (a real token never attends to a later pad); left-padded ones do.
    """
    hidden = model(ids, pad_mask=pad_mask, return_hidden=True)
    head = model.module.logits_from_hidden if hasattr(model, "module") else model.logits_from_hidden
    return logprobs_from_hidden(hidden, ids, head, chunk_size=chunk_size, with_entropy=with_entropy)


def masked_sums(logp: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sum of log-probs over `mask` and the number of masked tokens (both `(B,)`, fp32)."""
    m = mask.to(logp.dtype)
    return (logp * m).sum(-1), m.sum(-1)

"""The one rule for rotary positions and attention masks of padded rows, with or without a KV cache.

A row's real tokens are numbered 0, 1, 2, … in order (padding gets no position of its own), continuing from the
row's next position when a cache already holds earlier tokens. A query attends to every real key at or before it;
a padded query also sees itself, so no softmax row is ever empty (no NaNs). Training forwards (no cache, right
padding), prefill (left padding) and one-token decoding all go through `positions_and_mask`, so a sequence is
positioned and masked the same way whichever path computes it.

This module knows tensors of booleans and positions; nothing about weights, caches' storage or tokenizers.
"""

from __future__ import annotations

import torch


def positions_and_mask(
    real: torch.Tensor,
    *,
    past_valid: torch.Tensor | None = None,
    next_pos: torch.Tensor | None = None,
    all_real: bool | None = None,
    past_all_valid: bool | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Rotary positions `(B, T)` and a boolean mask `(B, 1, T, P + T)` for `T` new tokens after `P` cached slots.

    `real (B, T)` marks the new tokens that are not padding; `past_valid (B, P)` the cached slots that hold real
    tokens; `next_pos (B,)` each row's next rotary position. Returns `(None, None)` when nothing is padded and the
    plain causal path computes the same thing (nanochat's fast path: no cache, or one token per row).
    `all_real` / `past_all_valid`: what the caller already knows on the host about `real.all()` /
    `past_valid.all()` (None: look, which waits for the device — once per decoded token, without them).
    """
    real = real.bool()
    B, T = real.shape
    P = 0 if past_valid is None else past_valid.size(1)
    if all_real is None:
        all_real = bool(real.all())
    aligned = all_real and (
        past_valid is None or (bool(past_valid.all()) if past_all_valid is None else past_all_valid)
    )
    if aligned and (T == 1 or P == 0):
        return None, None
    offsets = (real.long().cumsum(1) - 1).clamp(min=0)
    positions = offsets if next_pos is None else next_pos[:, None] + offsets
    key_valid = real if past_valid is None else torch.cat([past_valid.bool(), real], dim=1)  # (B, P+T)
    q_abs = P + torch.arange(T, device=real.device)
    k_abs = torch.arange(P + T, device=real.device)
    causal = k_abs[None, :] <= q_abs[:, None]  # (T, P+T)
    itself = k_abs[None, :] == q_abs[:, None]
    mask = (causal[None] & key_valid[:, None, :]) | itself[None]
    return positions, mask[:, None, :, :]

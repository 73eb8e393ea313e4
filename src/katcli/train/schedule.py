"""The learning-rate schedule: linear warmup, then cosine decay to a floor.

`lr_at(step)` for a 0-based optimizer step: `peak · (step + 1) / warmup` during warmup, then a half cosine from
`peak` down to `peak · min_ratio` at the last step. A pure function of the step, so a resumed run gets exactly the
rates an uninterrupted run would. Nothing here knows optimizers or models.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, peak: float, total_steps: int, warmup_steps: int, min_ratio: float = 0.1) -> float:
    if total_steps < 1:
        raise ValueError("total_steps must be at least 1")
    warmup = max(0, min(warmup_steps, total_steps))
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = total_steps - warmup
    if decay_steps <= 1:
        return peak
    progress = min(1.0, (step - warmup) / (decay_steps - 1))
    floor = peak * min_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def default_warmup(total_steps: int) -> int:
    """5% of the run, at least one step and at most 100 steps."""
    return max(1, min(100, round(0.05 * total_steps)))

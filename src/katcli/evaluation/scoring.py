"""Quality of replies under a reward model: rewards per reply, and win rates between two policies.

A reply is scored the way the reward model was trained, by the one reply scorer `kat train grpo` uses too
(`katcli.train.rm_scoring.RewardScorer`): its decoded text is tokenised with the *reward model's* tokenizer after
the prompt rendered by that tokenizer, then `<|assistant_end|>`, fitted into the model's `max_len` on its own, so a
reply's reward never depends on any other reply.

`win_rate(a, b)`: the fraction of the K_a × K_b sample pairs of one prompt in which `a`'s reward beats `b`'s,
ties counting one half; a policy against itself scores exactly 0.5.

This module knows reward models and sequences; not files, workspaces or which policies exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from katcli.progress import ProgressFn, no_progress


def win_rate(a: Sequence[float], b: Sequence[float]) -> float | None:
    """P(reward of a sample of `a` > reward of a sample of `b`) over all sample pairs, ties ½; None if empty."""
    x, y = np.asarray(a, dtype=np.float64)[:, None], np.asarray(b, dtype=np.float64)[None, :]
    if x.size == 0 or y.size == 0:
        return None
    return float(((x > y) + 0.5 * (x == y)).mean())


def score_replies(
    scorer: Any,
    prompts: Sequence[Sequence[Mapping[str, Any]]],
    replies: Sequence[Sequence[str]],
    *,
    progress: ProgressFn = no_progress,
    task: str = "scoring",
) -> list[list[float]]:
    """The reward of every reply (`replies[i]` are the replies to `prompts[i]`), same nesting.

    `scorer` is a `katcli.train.rm_scoring.RewardScorer`: each reply is fitted and scored on its own.
    """
    flat_prompts = [prompts[i] for i, texts in enumerate(replies) for _ in texts]
    flat = [t for texts in replies for t in texts]
    rewards = scorer(flat_prompts, flat, progress=progress, task=task)
    out: list[list[float]] = []
    pos = 0
    for texts in replies:
        out.append([float(r) for r in rewards[pos : pos + len(texts)]])
        pos += len(texts)
    return out

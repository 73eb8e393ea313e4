"""Quality of replies under a reward model: rewards per reply, and win rates between two policies.

A reply is scored the way the reward model was trained: its decoded text is tokenised with the *reward model's*
tokenizer and appended to the prompt rendered by that tokenizer, then `<|assistant_end|>`, fitted into the model's
`max_len` by `katcli.train.sequences` (`encode_pairs`). Replies go through `encode_pairs`/`score_pairs` two at a
time — consecutive samples of one prompt from one policy as a "pair" (an odd last sample is paired with itself) — so
a reply's reward never depends on another policy's replies.

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
    rm: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, Any]]],
    replies: Sequence[Sequence[str]],
    *,
    max_len: int,
    max_response_len: int,
    batch_size: int,
    device: Any,
    progress: ProgressFn = no_progress,
    task: str = "scoring",
) -> list[list[float]]:
    """The reward of every reply (`replies[i]` are the replies to `prompts[i]`), same nesting."""
    from katcli.train.evaluate import score_pairs
    from katcli.train.sequences import encode_pairs

    rows: list[tuple[Sequence[Mapping[str, Any]], str, str]] = []
    where: list[tuple[int, int, int | None]] = []  # (prompt, first sample, second sample or None)
    for i, texts in enumerate(replies):
        for k in range(0, len(texts), 2):
            second = k + 1 if k + 1 < len(texts) else None
            rows.append((prompts[i], texts[k], texts[second if second is not None else k]))
            where.append((i, k, second))
    out: list[list[float]] = [[0.0] * len(t) for t in replies]
    if not rows:
        return out
    enc = encode_pairs(tokenizer, rows, max_len=max_len, max_response_len=max_response_len)
    _, rewards = score_pairs(
        rm, enc, np.arange(len(rows)), batch_size=batch_size, pad_id=tokenizer.bos_token_id, device=device,
        progress=progress, task=task,
    )
    for (i, k, second), r in zip(where, rewards):
        out[i][k] = float(r[0])
        if second is not None:
            out[i][second] = float(r[1])
    return out

"""Which held-out prompts a policy evaluation uses: an equal, seeded draw from every density quintile.

The held-out prompts are put into density quintiles (`katcli.train.metrics.density_quintiles`: Q1 commonest … Q5
rarest, equal counts, computed over *all* held-out prompts), and the same number is drawn from each, so the rarest
fifth contributes as many prompts as the commonest instead of a handful. Within a quintile prompts are ordered by a
seeded hash of their id and the first ones are taken, so the draw depends only on (seed, ids, weights), and a larger
`--prompts` keeps every prompt a smaller one drew. When a quintile has too few prompts, the others make up the
difference. Without density weights the draw is the same hash order over all held-out prompts (uniform).

This module knows prefix ids and weights; nothing about pairs files, models or rendering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from katcli.errors import ConfigError
from katcli.train.metrics import N_QUINTILES, density_quintiles


@dataclass(frozen=True)
class PromptDraw:
    """Drawn prompt ids in a fixed order, each with its quintile (None without weights)."""

    ids: tuple[str, ...]
    quintile: tuple[int | None, ...]
    stratified: bool
    available: tuple[int, ...]  # held-out prompts per quintile (or one entry: all of them)
    quintile_ranges: list[list[float]] | None = None

    def per_quintile(self) -> list[int]:
        return [sum(1 for q in self.quintile if q == k) for k in range(N_QUINTILES)] if self.stratified else []


def draw_key(seed: int, prompt_id: str) -> bytes:
    return hashlib.sha256(f"kat-eval-prompts:{seed}:{prompt_id}".encode()).digest()


def _quotas(n: int, available: Sequence[int]) -> list[int]:
    """n split as evenly as possible over groups, never more than a group holds (the rest go to the others)."""
    quota = [0] * len(available)
    left = n
    open_groups = [k for k, a in enumerate(available) if a > 0]
    while left > 0 and open_groups:
        share, extra = divmod(left, len(open_groups))
        # The remainder goes to the rarest groups first: they are the point of stratifying.
        for rank, k in enumerate(sorted(open_groups, reverse=True)):
            take = min(available[k] - quota[k], share + (1 if rank < extra else 0))
            quota[k] += take
            left -= take
        open_groups = [k for k in open_groups if quota[k] < available[k]]
    return quota


def draw_prompts(
    prompt_ids: Sequence[str], n: int, *, seed: int, weights: Mapping[str, float] | None = None
) -> PromptDraw:
    """Draw `n` distinct prompts (all of them when there are fewer), stratified by quintile when `weights` cover
    every prompt. The result is ordered by quintile, then by the seeded hash."""
    if n < 1:
        raise ConfigError("--prompts must be at least 1")
    ids = sorted(set(prompt_ids))
    if weights is None or not all(pid in weights for pid in ids):
        chosen = sorted(ids, key=lambda pid: draw_key(seed, pid))[:n]
        return PromptDraw(tuple(chosen), tuple(None for _ in chosen), False, (len(ids),))
    quint, ranges = density_quintiles(ids, weights)
    groups: list[list[str]] = [[] for _ in range(N_QUINTILES)]
    for pid, q in zip(ids, quint):
        groups[q].append(pid)
    available = [len(g) for g in groups]
    quota = _quotas(min(n, len(ids)), available)
    out_ids: list[str] = []
    out_q: list[int | None] = []
    for q, (members, k) in enumerate(zip(groups, quota)):
        for pid in sorted(members, key=lambda p: draw_key(seed, p))[:k]:
            out_ids.append(pid)
            out_q.append(q)
    return PromptDraw(tuple(out_ids), tuple(out_q), True, tuple(available), ranges)

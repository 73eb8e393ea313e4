"""The held-out split: which prompts a reward model never trains on.

A pair is held out when its `prefix_id`, hashed together with the split seed, falls below `val_ratio`. The decision
depends on nothing but (seed, prefix_id, val_ratio), so

- every pair of one prompt lands on the same side (no prompt is ever in both sets), and
- uniform and density-aware runs with the same seed hold out exactly the same pairs, whatever their weights.

The pairs' own `split` field (a source's train/test label) is deliberately not used: prefix ids group pairs by
their first user message across source splits, so a source split could leak a prompt into both sets.
This module knows prefix ids and hashing, nothing about files, weights or models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from katcli.errors import ConfigError, KatError


def heldout_fraction(prefix_id: str, seed: int) -> float:
    """A uniform number in [0, 1) determined by (seed, prefix_id)."""
    digest = hashlib.sha256(f"kat-heldout:{seed}:{prefix_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout(prefix_id: str, seed: int, val_ratio: float) -> bool:
    return heldout_fraction(prefix_id, seed) < val_ratio


@dataclass(frozen=True)
class Split:
    """Indices into the pair list: training pairs and held-out pairs, each in file order."""

    train: tuple[int, ...]
    heldout: tuple[int, ...]
    seed: int
    val_ratio: float

    def fingerprint(self, pair_ids: Sequence[str]) -> str:
        """sha256 of the held-out pair ids (sorted), to show two runs evaluated on the same pairs."""
        h = hashlib.sha256()
        for pid in sorted(pair_ids[i] for i in self.heldout):
            h.update(pid.encode("utf-8") + b"\n")
        return h.hexdigest()


def split_pairs(prefix_ids: Sequence[str], *, seed: int, val_ratio: float) -> Split:
    """Partition pairs by their prompt; both sides must be non-empty."""
    if not 0.0 < val_ratio < 1.0:
        raise ConfigError(f"--val-ratio must be between 0 and 1 (exclusive), got {val_ratio}")
    cache: dict[str, bool] = {}
    train: list[int] = []
    heldout: list[int] = []
    for i, pid in enumerate(prefix_ids):
        side = cache.get(pid)
        if side is None:
            side = cache[pid] = is_heldout(pid, seed, val_ratio)
        (heldout if side else train).append(i)
    n_prompts = len(cache)
    n_held = sum(cache.values())
    if not heldout or not train:
        empty = "held-out" if not heldout else "training"
        raise KatError(
            f"the {empty} set is empty: {n_held} of {n_prompts} prompts fall in --val-ratio {val_ratio}",
            hint="use more pairs, or change --val-ratio / --seed",
        )
    return Split(tuple(train), tuple(heldout), seed, val_ratio)

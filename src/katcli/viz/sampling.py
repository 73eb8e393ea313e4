"""Choose which prompts a viz page shows when there are more than `--max-points`.

A browser scatter stays responsive up to a few thousand points, but the prompts a researcher most wants
to see are the rare ones, which a uniform sample would mostly drop. So the sample is two parts:

1. the rarest prompts — the highest density weights (weight ∝ (density + eps) ** -power, so rare
   prompts weigh most) — always kept: a fixed share of the budget (`rare_fraction`);
2. the rest of the budget filled uniformly at random (seeded) from everything else, so the bulk of the
   distribution keeps its true shape rather than being tilted toward the tail.

Ties in weight are broken by row index, so the selection is a pure function of (weights, max_points, seed).
This module knows nothing about files, embeddings or projections; it only turns weights into row indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from katcli.errors import ConfigError

#: Share of the point budget reserved for the highest-weight (rarest) prompts.
DEFAULT_RARE_FRACTION = 0.2


@dataclass(frozen=True)
class Selection:
    """Rows to show, ascending; `n_rare` of them were kept for being among the rarest."""

    indices: np.ndarray  # int64 [n_shown], sorted ascending (the embeddings' row order)
    n_total: int
    n_rare: int

    @property
    def n_shown(self) -> int:
        return int(self.indices.shape[0])

    @property
    def sampled(self) -> bool:
        return self.n_shown < self.n_total


def rarest_first(weights: np.ndarray) -> np.ndarray:
    """Row indices ordered from highest weight (rarest) to lowest; equal weights in row order."""
    # A stable sort on the negated weights keeps ties in ascending row order, deterministically.
    return np.argsort(-np.asarray(weights, dtype=np.float64), kind="stable")


def select_points(
    weights: np.ndarray,
    max_points: int,
    seed: int,
    rare_fraction: float = DEFAULT_RARE_FRACTION,
) -> Selection:
    """Pick at most `max_points` rows: the rarest `ceil(rare_fraction * max_points)` plus a seeded uniform rest.

    When there are no more rows than `max_points`, every row is shown and the seed is irrelevant.
    """
    if max_points < 1:
        raise ConfigError("--max-points must be at least 1")
    if not 0.0 <= rare_fraction <= 1.0:
        raise ConfigError("the rare fraction must lie in [0, 1]")
    w = np.asarray(weights)
    if w.ndim != 1:
        raise ValueError(f"weights must be one-dimensional, got shape {list(w.shape)}")
    n = int(w.shape[0])
    if n <= max_points:
        return Selection(indices=np.arange(n, dtype=np.int64), n_total=n, n_rare=0)

    n_rare = min(max_points, int(np.ceil(rare_fraction * max_points)))
    order = rarest_first(w)
    rare = order[:n_rare]
    rest = order[n_rare:]
    # Sorting the remainder first makes the draw independent of how ties happened to be ordered above.
    rest = np.sort(rest)
    rng = np.random.default_rng(seed)
    fill = rng.choice(rest, size=max_points - n_rare, replace=False) if max_points > n_rare else rest[:0]
    chosen = np.sort(np.concatenate([rare, fill]).astype(np.int64))
    return Selection(indices=chosen, n_total=n, n_rare=n_rare)

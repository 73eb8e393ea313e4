"""From neighbour similarities to density weights, and the statistics that let a user trust them.

    density_i = clamp(mean of the k largest cosine similarities of prompt i to the others, 0, 1)
    weight_i  = (density_i + eps) ** -power        # rare prompts (low density) weigh MORE
    optionally weight_i = min(weight_i, max_ratio * min_j weight_j)
    weights  /= sum(weights)                         # a distribution over prompts

All arithmetic is float64; callers store float32. Every function here is pure (arrays in, arrays out).
This module knows nothing about how neighbours are found, about models, files or the workspace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from katcli.errors import ConfigError

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


@dataclass(frozen=True)
class WeightParams:
    eps: float = 1e-3
    power: float = 1.0
    max_ratio: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise ConfigError(f"--eps must be a positive number (got {self.eps})")
        if not (isinstance(self.power, (int, float)) and math.isfinite(self.power) and self.power >= 0):
            raise ConfigError(
                f"--power must be a number ≥ 0 (got {self.power})",
                hint="0 gives uniform weights; larger values up-weight rare prompts more",
            )
        if self.max_ratio is not None and not (math.isfinite(self.max_ratio) and self.max_ratio >= 1):
            raise ConfigError(f"--max-ratio must be at least 1 (got {self.max_ratio})")


@dataclass(frozen=True)
class Weights:
    weights: np.ndarray  # float64 [N], sums to 1
    n_clipped: int  # how many weights --max-ratio lowered


def density_from_similarities(sims: np.ndarray) -> np.ndarray:
    """Mean of each row's neighbour similarities (self already excluded), clamped to [0, 1], float64."""
    sims = np.asarray(sims)
    if sims.ndim != 2 or sims.shape[1] < 1:
        raise ValueError(f"expected [N, k] similarities, got shape {sims.shape}")
    # Sorting each row first makes the float64 sum independent of the order the index returned neighbours in.
    ordered = -np.sort(-sims.astype(np.float64), axis=1)
    return np.clip(ordered.mean(axis=1), 0.0, 1.0)


def density_weights(density: np.ndarray, params: WeightParams) -> Weights:
    """Normalised weights from densities in [0, 1]; see the module docstring for the formula."""
    d = np.asarray(density, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("density must be a non-empty 1-D array")
    if not np.isfinite(d).all() or (d < 0).any() or (d > 1).any():
        raise ValueError("density values must lie in [0, 1]")
    raw = (d + params.eps) ** (-params.power)
    n_clipped = 0
    if params.max_ratio is not None:
        cap = params.max_ratio * raw.min()
        n_clipped = int((raw > cap).sum())
        raw = np.minimum(raw, cap)
    return Weights(weights=raw / raw.sum(), n_clipped=n_clipped)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's ESS of a distribution over prompts: 1 / Σ w² (N for uniform weights, 1 for a point mass)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return float(1.0 / np.sum(w * w))


def _stat(x: float) -> float:
    # Fixed significant digits keep the metadata file byte-stable across platforms' last-ulp noise.
    return float(f"{x:.10g}")


def summary(x: np.ndarray) -> dict[str, Any]:
    """min, max, mean and the standard percentiles of a 1-D array."""
    x = np.asarray(x, dtype=np.float64)
    pct = np.percentile(x, PERCENTILES)
    return {
        "min": _stat(x.min()),
        "max": _stat(x.max()),
        "mean": _stat(x.mean()),
        "percentiles": {f"p{p}": _stat(v) for p, v in zip(PERCENTILES, pct)},
    }


def weight_statistics(weights: np.ndarray) -> dict[str, Any]:
    """What a user needs to judge a weighting: range, spread, percentiles and effective sample size."""
    w = np.asarray(weights, dtype=np.float64)
    n = int(w.size)
    ess = effective_sample_size(w)
    stats = summary(w)
    stats.update(
        {
            "n": n,
            "sum": _stat(w.sum()),
            "max_min_ratio": _stat(w.max() / w.min()) if w.min() > 0 else math.inf,
            "ess": _stat(ess),
            "ess_fraction": _stat(ess / n),
        }
    )
    return stats

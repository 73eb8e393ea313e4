"""Embeddings in, density weights and their diagnostics out: neighbours (knn) → density → weights (weights).

`estimate_density` is what `kat embed` and the benchmark run after encoding. It returns plain arrays and
a JSON-ready description (index, recall, parameters, statistics, timings) — it writes nothing and knows
nothing about texts, models, files or the workspace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from katcli.density.knn import KnnParams, KnnResult, neighbour_similarities
from katcli.density.weights import (
    WeightParams,
    density_from_similarities,
    density_weights,
    summary,
    weight_statistics,
)
from katcli.progress import ProgressFn, no_progress


@dataclass
class DensityResult:
    density: np.ndarray  # float64 [N] in [0, 1]: mean similarity to the k nearest other prompts
    weights: np.ndarray  # float64 [N], sums to 1; what is saved (as float32)
    knn: KnnResult
    n_clipped: int
    stats: dict[str, Any] = field(default_factory=dict)  # weight statistics of the float32 weights
    density_stats: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def weights_f32(self) -> np.ndarray:
        return self.weights.astype(np.float32)

    # Ranked by density, not weight: --max-ratio can make many of the rarest weights equal.
    def rarest(self, n: int = 5) -> list[int]:
        """Rows of the n lowest densities (the highest weights), ties by row number."""
        return [int(i) for i in np.lexsort((np.arange(self.density.size), self.density))[:n]]

    def densest(self, n: int = 5) -> list[int]:
        """Rows of the n highest densities (the lowest weights), ties by row number."""
        return [int(i) for i in np.lexsort((np.arange(self.density.size), -self.density))[:n]]


def estimate_density(
    emb: np.ndarray,
    knn_params: KnnParams,
    weight_params: WeightParams,
    *,
    progress: ProgressFn = no_progress,
) -> DensityResult:
    """Density and weights for L2-normalised float32 embeddings `[N, D]`."""
    t0 = time.perf_counter()
    knn = neighbour_similarities(emb, knn_params, progress=progress)
    density = density_from_similarities(knn.sims)
    w = density_weights(density, weight_params)
    stats = weight_statistics(w.weights.astype(np.float32))
    timings = dict(knn.timings)
    timings["density_total_s"] = time.perf_counter() - t0
    return DensityResult(
        density=density,
        weights=w.weights,
        knn=knn,
        n_clipped=w.n_clipped,
        stats=stats,
        density_stats=summary(density),
        timings=timings,
    )

"""Project prompt embeddings [N, D] to 3-D coordinates for the viz page.

Two methods:

- **PCA** (default, numpy only). The principal axes are fitted on *all* N rows — streamed in chunks, so an
  N × D float64 copy never exists — from the D × D covariance matrix, decomposed with `numpy.linalg.svd`.
  Only the shown rows are then transformed. Each axis's sign is fixed by a convention (its largest-magnitude
  loading is positive), so the same embeddings always give the same picture, not a mirrored one.
- **UMAP**, only when the optional `umap-learn` package is importable (`pip install 'katcli[umap]'`). It is
  fitted on the shown rows only (UMAP is far costlier than PCA), cosine metric, seeded, so reruns repeat.

This module knows nothing about files, weights, prompts or HTML; it maps arrays to arrays.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress

METHODS = ("pca", "umap")
N_COMPONENTS = 3
#: Rows per chunk when accumulating the covariance: bounds memory at chunk_rows × D float64.
DEFAULT_CHUNK_ROWS = 16384
UMAP_NEIGHBOURS = 15
UMAP_MIN_POINTS = 4


@dataclass(frozen=True)
class Projection:
    """3-D coordinates for the shown rows, plus what a reader needs to interpret the axes."""

    coords: np.ndarray  # float64 [n_shown, 3]
    method: str
    #: PCA: share of the total variance each axis carries (3 values); UMAP: None (axes carry no variance).
    explained_variance_ratio: list[float] | None
    fitted_on: int  # how many rows the projection was fitted on
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PCAModel:
    """Fitted principal axes: `transform(x) = (x - mean) @ components.T`."""

    mean: np.ndarray  # float64 [D]
    components: np.ndarray  # float64 [3, D]; rows padded with zeros when D < 3
    explained_variance_ratio: np.ndarray  # float64 [3]
    n_fit: int

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T


def _chunks(n: int, chunk_rows: int):
    for start in range(0, n, chunk_rows):
        yield start, min(n, start + chunk_rows)


def _fix_signs(components: np.ndarray) -> np.ndarray:
    """Flip each axis so that its largest-|loading| entry is positive (first such entry on ties)."""
    out = components.copy()
    for k in range(out.shape[0]):
        row = out[k]
        if not np.any(row):
            continue
        pivot = int(np.argmax(np.abs(row)))
        if row[pivot] < 0:
            out[k] = -row
    return out


def fit_pca(
    x: np.ndarray,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressFn = no_progress,
) -> PCAModel:
    """Fit the top-3 principal axes of `x` [N, D] (N ≥ 1). Works on memory-mapped arrays chunk by chunk."""
    if x.ndim != 2:
        raise ValueError(f"embeddings must be two-dimensional, got shape {list(x.shape)}")
    n, d = int(x.shape[0]), int(x.shape[1])
    if n < 1 or d < 1:
        raise ValueError(f"cannot fit PCA on an empty array of shape {[n, d]}")

    # Two passes (mean, then centred covariance) rather than E[xxᵀ] - μμᵀ, which loses precision
    # when the mean is large relative to the spread — typical of sentence embeddings.
    total = 2 * n
    mean = np.zeros(d, dtype=np.float64)
    for start, stop in _chunks(n, chunk_rows):
        mean += np.asarray(x[start:stop], dtype=np.float64).sum(axis=0)
        progress("pca", stop, total)
    mean /= n

    cov = np.zeros((d, d), dtype=np.float64)
    for start, stop in _chunks(n, chunk_rows):
        centred = np.asarray(x[start:stop], dtype=np.float64) - mean
        cov += centred.T @ centred
        progress("pca", n + stop, total)
    cov /= max(n - 1, 1)

    # The covariance is symmetric PSD, so its SVD is its eigendecomposition with values sorted descending.
    u, s, _ = np.linalg.svd(cov)
    k = min(N_COMPONENTS, d)
    components = np.zeros((N_COMPONENTS, d), dtype=np.float64)
    components[:k] = _fix_signs(u[:, :k].T)
    variance_total = float(s.sum())
    ratio = np.zeros(N_COMPONENTS, dtype=np.float64)
    if variance_total > 0:
        ratio[:k] = s[:k] / variance_total
    return PCAModel(mean=mean, components=components, explained_variance_ratio=ratio, n_fit=n)


def pca_3d(
    x: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressFn = no_progress,
) -> Projection:
    """PCA fitted on all of `x`, coordinates for `rows` (all rows when None), in the order given."""
    model = fit_pca(x, chunk_rows=chunk_rows, progress=progress)
    picked = x if rows is None else x[np.asarray(rows, dtype=np.int64)]
    coords = model.transform(picked)
    # Components padded for D < 3 give exact zeros; normalise -0.0 so serialised output never shows "-0.0".
    coords = coords + 0.0
    return Projection(
        coords=coords,
        method="pca",
        explained_variance_ratio=[float(v) for v in model.explained_variance_ratio],
        fitted_on=model.n_fit,
        params={"sign_convention": "largest-magnitude loading positive"},
    )


def umap_available() -> bool:
    """Whether the optional `umap-learn` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("umap") is not None


def require_umap() -> None:
    """Stop with a clear message when `--method umap` is asked for but `umap-learn` is not installed."""
    if not umap_available():
        raise KatError(
            "--method umap needs the optional umap-learn package, which is not installed",
            hint="install it with `pip install 'katcli[umap]'` (or `pip install umap-learn`), "
            "or use the default `--method pca`",
        )


def umap_3d(
    x: np.ndarray,
    *,
    seed: int,
    n_neighbors: int = UMAP_NEIGHBOURS,
    progress: ProgressFn = no_progress,
) -> Projection:
    """UMAP (cosine, seeded) of exactly the rows in `x` [n, D] to 3-D, centred on the origin."""
    require_umap()
    n = int(x.shape[0])
    if n < UMAP_MIN_POINTS:
        raise KatError(
            f"--method umap needs at least {UMAP_MIN_POINTS} prompts to lay out, got {n}",
            hint="use `--method pca` for very small prompt sets",
        )
    import umap  # optional dependency, imported only when asked for

    neighbours = max(2, min(n_neighbors, n - 1))
    progress("umap", 0, 1)
    reducer = umap.UMAP(
        n_components=N_COMPONENTS,
        n_neighbors=neighbours,
        metric="cosine",
        random_state=seed,
    )
    coords = np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float64)
    coords = coords - coords.mean(axis=0)
    progress("umap", 1, 1)
    return Projection(
        coords=coords,
        method="umap",
        explained_variance_ratio=None,
        fitted_on=n,
        params={"n_neighbors": neighbours, "metric": "cosine", "random_state": seed},
    )


def project(
    embeddings: np.ndarray,
    rows: np.ndarray,
    *,
    method: str,
    seed: int,
    progress: ProgressFn = no_progress,
) -> Projection:
    """3-D coordinates for `rows` of `embeddings` by `method` ("pca" or "umap")."""
    if method == "pca":
        return pca_3d(embeddings, rows, progress=progress)
    if method == "umap":
        require_umap()
        return umap_3d(np.asarray(embeddings[np.asarray(rows, dtype=np.int64)]), seed=seed, progress=progress)
    raise ValueError(f"unknown projection method {method!r}; expected one of {', '.join(METHODS)}")

"""Every row's k nearest-neighbour similarities through an inverted-file (IVF) index searched by matrix products.

Why it exists: density needs the k-NN of EVERY row, and on a small CPU an HNSW graph spends most of its time
in pointer-chasing single-vector distances, whose reproducible build is single-threaded. Here the work is
dense matrix products, so it runs at BLAS speed on all cores and stays byte-reproducible:

1. **Cells**: spherical k-means (Lloyd, seeded) puts the rows into C cells, C ≈ 4·√N by default; centroids
   are trained on a seeded sample of `train_per_cell` rows per cell.
2. **Probes**: each row's `nprobe` most similar centroids, most similar first; the first one is its own cell.
3. **Search, cell by cell**: the members of one cell against every query that probes it are ONE matrix
   product; each query keeps a running top-k of similarities. A query meets each probed row exactly once
   and never itself, so no neighbour is counted twice.
4. **Recall is measured, not assumed** (as for HNSW): a seeded sample of queries is answered exactly, and
   `nprobe` (unless fixed) starts at 8 and grows by half until the sample's recall@k reaches `target_recall`
   (or `max_nprobe`); only the sample is searched per width, incrementally, and the full pass runs once.
   With nprobe = C the search is exact.

Only similarity VALUES are kept: the top-k multiset of values does not depend on the order in which cells
are visited or on how ties are broken, so the result is byte-identical however threads schedule the work.
A query whose probed cells hold fewer than k other rows is answered exactly (counted in `exact_fallback`).

Measured on bench/bench_density.py's clustered 384-d data (k = 20, 2 cores): see that file's docstring.
Inputs must be L2-normalised float32 rows. This module knows nothing about texts, models, weights or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from katcli.errors import ConfigError
from katcli.progress import ProgressFn, no_progress

#: Rows of a block of query-by-centroid similarities (rows × C float32).
_ASSIGN_BLOCK = 16_384
#: Queries per matrix product in the cell search, and the memory one product (queries × members) may use.
_SEARCH_BLOCK = 32_768
_SEARCH_BYTES = 128 << 20


@dataclass(frozen=True)
class IvfParams:
    cells: int | None = None  # None: about 4·√N (see default_cells)
    nprobe: int | None = None  # None: widen until the sampled recall reaches the target (KnnParams)
    max_nprobe: int = 128
    train_per_cell: int = 32
    iterations: int = 10

    def __post_init__(self) -> None:
        if self.cells is not None and self.cells < 1:
            raise ConfigError(f"IVF cells must be at least 1 (got {self.cells})")
        if self.nprobe is not None and self.nprobe < 1:
            raise ConfigError(f"IVF nprobe must be at least 1 (got {self.nprobe})")
        if self.max_nprobe < 1 or self.train_per_cell < 1 or self.iterations < 0:
            raise ConfigError("IVF max_nprobe and train_per_cell must be at least 1, iterations at least 0")


def default_cells(n: int) -> int:
    """About 4·√N cells (≈ √N / 4 rows each): the search costs N·nprobe·N/C, the assignment N·C."""
    return max(1, min(n, round(4 * math.sqrt(n))))


class CellIndex:
    """Centroids, each row's probe list, and the members of every cell (row numbers, ascending)."""

    def __init__(self, emb, centroids, probes) -> None:
        import torch

        self.emb = emb  # torch float32 [N, D], shares memory with the caller's array
        self.centroids = centroids  # torch float32 [C, D], unit rows
        self.probes = probes  # torch int [N, P]: most similar cell first; column 0 is the row's own cell
        cells = centroids.shape[0]
        own = probes[:, 0].long()
        self.order = torch.argsort(own, stable=True)  # rows grouped by cell, ascending within a cell
        self.starts = torch.zeros(cells + 1, dtype=torch.long)
        self.starts[1:] = torch.cumsum(torch.bincount(own, minlength=cells), 0)
        # Where each row sits inside its own cell's member list: the one entry to blank out as "self".
        self.slot = torch.empty_like(self.order)
        self.slot[self.order] = torch.arange(len(own)) - self.starts[own[self.order]]

    @property
    def cells(self) -> int:
        return self.centroids.shape[0]

    def members(self, cell: int):
        return self.order[self.starts[cell] : self.starts[cell + 1]]


def train_centroids(emb_t, cells: int, params: IvfParams, seed: int, *, progress: ProgressFn = no_progress):
    """Spherical k-means: `cells` unit centroids, initialised on distinct seeded rows of a seeded sample."""
    import torch

    n = emb_t.shape[0]
    # A stream of its own: the recall sample is drawn from default_rng(seed), and tuning on the training rows
    # would flatter the recall.
    rng = np.random.default_rng([seed, 1])
    train_n = min(n, cells * params.train_per_cell)
    train_rows = np.sort(rng.choice(n, size=train_n, replace=False))
    train = emb_t[torch.from_numpy(train_rows)]
    init = np.sort(rng.choice(train_n, size=cells, replace=False))
    centroids = train[torch.from_numpy(init)].clone()
    for it in range(params.iterations):
        own = _nearest(train, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, own, train)
        counts = torch.bincount(own, minlength=cells)
        norms = sums.norm(dim=1, keepdim=True)
        # An empty cell (or one whose members cancel out) keeps its centroid: deterministic, and rare.
        keep = (counts == 0) | (norms[:, 0] == 0)
        centroids = torch.where(keep[:, None], centroids, sums / norms.clamp_min(1e-30))
        progress("k-means cells", it + 1, params.iterations)
    return centroids


def _nearest(rows, centroids):
    import torch

    out = torch.empty(rows.shape[0], dtype=torch.long)
    for s in range(0, rows.shape[0], _ASSIGN_BLOCK):
        out[s : s + _ASSIGN_BLOCK] = (rows[s : s + _ASSIGN_BLOCK] @ centroids.T).argmax(dim=1)
    return out


def probe_lists(emb_t, centroids, width: int, *, progress: ProgressFn = no_progress):
    """Each row's `width` most similar centroids, most similar first (int16 when the cells fit, to save memory)."""
    import torch

    n, cells = emb_t.shape[0], centroids.shape[0]
    width = min(width, cells)
    dtype = torch.int16 if cells <= 32_767 else torch.int32
    out = torch.empty((n, width), dtype=dtype)
    for s in range(0, n, _ASSIGN_BLOCK):
        sims = emb_t[s : s + _ASSIGN_BLOCK] @ centroids.T
        out[s : s + _ASSIGN_BLOCK] = torch.topk(sims, width, dim=1).indices.to(dtype)
        progress("assign cells", min(n, s + _ASSIGN_BLOCK), n)
    return out


def build_cell_index(
    emb: np.ndarray, params: IvfParams, seed: int, *, progress: ProgressFn = no_progress
) -> CellIndex:
    import torch

    emb_t = torch.from_numpy(emb)
    cells = params.cells if params.cells is not None else default_cells(emb.shape[0])
    if cells > emb.shape[0]:
        raise ConfigError(f"IVF cells must be at most the number of prompts ({emb.shape[0]}), got {cells}")
    centroids = train_centroids(emb_t, cells, params, seed, progress=progress)
    width = params.nprobe if params.nprobe is not None else params.max_nprobe
    return CellIndex(emb_t, centroids, probe_lists(emb_t, centroids, width, progress=progress))


def search_cells(
    index: CellIndex,
    rows,
    lo: int,
    hi: int,
    k: int,
    best=None,
    *,
    progress: ProgressFn = no_progress,
    task: str | None = None,
):
    """Merge probe columns [lo, hi) of `rows` (torch long [Q]) into their running top-k `best` ([Q, k] float32).

    Cell by cell: the cell's members against all queries probing it in those columns, one matrix product.
    """
    import torch

    q = rows.shape[0]
    if best is None:
        best = torch.full((q, k), -math.inf, dtype=torch.float32)
    cols = index.probes[rows, lo:hi].long()
    width = cols.shape[1]
    if width == 0:
        return best
    flat = cols.reshape(-1)
    order = torch.argsort(flat, stable=True)
    queries = order // width  # local query number of each (query, probe) entry, grouped by cell
    is_own = (order % width) == 0 if lo == 0 else torch.zeros_like(order, dtype=torch.bool)
    bounds = torch.zeros(index.cells + 1, dtype=torch.long)
    bounds[1:] = torch.cumsum(torch.bincount(flat, minlength=index.cells), 0)
    emb = index.emb
    cells = torch.nonzero(bounds[1:] > bounds[:-1])[:, 0].tolist()
    for done, cell in enumerate(cells, 1):
        members = index.members(cell)
        if len(members):
            vecs = emb[members]
            kk = min(k, len(members))
            step = max(1, min(_SEARCH_BLOCK, _SEARCH_BYTES // (4 * len(members))))
            for s in range(int(bounds[cell]), int(bounds[cell + 1]), step):
                e = min(int(bounds[cell + 1]), s + step)
                local = queries[s:e]
                qrows = rows[local]
                sims = emb[qrows] @ vecs.T
                own = torch.nonzero(is_own[s:e])[:, 0]
                if len(own):  # a query meets itself only in its own cell (probe column 0)
                    sims[own, index.slot[qrows[own]]] = -math.inf
                top = torch.topk(sims, kk, dim=1).values
                best[local] = torch.topk(torch.cat([best[local], top], dim=1), k, dim=1).values
        if task is not None:
            progress(task, done, len(cells))
    return best


def cell_order(emb: np.ndarray, seed: int, *, iterations: int = 4, progress: ProgressFn = no_progress) -> np.ndarray:
    """Every row number once, grouped by nearest k-means cell (about 4·√N cells), ascending within a cell.

    A cheap locality order (a few k-means iterations are enough for it): density/hnsw.py inserts and queries
    in it.
    """
    index = build_cell_index(emb, IvfParams(iterations=iterations, max_nprobe=1), seed, progress=progress)
    return index.order.numpy()

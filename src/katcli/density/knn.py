"""k nearest neighbours by cosine similarity, for every prompt, excluding itself: exact, HNSW or IVF.

- **exact**: blocks of query rows times the whole matrix (BLAS), a top-k per row (torch.topk, multi-threaded);
  a block is sized to ~256 MB, so memory is O(N·D + block), never an N×N matrix.
- **hnsw**: hnswlib with the cosine space, as reproducible sharded graphs built side by side (density/hnsw.py).
- **ivf**: cells from spherical k-means searched by matrix products (density/ivf.py). It exists because on a
  small CPU an HNSW graph is bound by pointer-chasing distance computations: at 1M rows (2 cores) HNSW took
  15 min (ef 365 for recall 0.95), IVF 3.6 min at the same recall.
- **auto**: exact below `AUTO_EXACT_MAX` prompts, IVF from there on: at 200k clustered prompts on 2 cores IVF took
  38 s, exact 266 s and HNSW 57-213 s (bench/bench_density.py), at the same measured recall.

Approximate indexes measure their recall@k, they do not assume it: a seeded random sample of queries is
answered exactly and compared (ties count as hits: a returned neighbour is correct when its similarity
reaches the k-th exact one). Unless the search width (HNSW ef, IVF nprobe) is fixed, it starts small and
grows by half until the sample's recall reaches `target_recall` (or the widest allowed); only the sample is
re-searched per width, and the full pass over all N rows runs once, at the width chosen.

Only similarities are returned (which neighbour it was is not needed for density). Inputs must be
L2-normalised float32 rows. This module knows nothing about texts, models, weights or files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from katcli.density.hnsw import HnswParams, build_hnsw, query_all, query_hnsw
from katcli.density.ivf import IvfParams, build_cell_index, search_cells
from katcli.errors import ConfigError, KatError
from katcli.progress import ProgressFn, no_progress

INDEXES = ("auto", "exact", "hnsw", "ivf")
AUTO_EXACT_MAX = 50_000
#: Memory for one block of exact similarities (rows × N float32).
EXACT_BLOCK_BYTES = 256 << 20
#: A neighbour's similarity may differ from the exact one in the last float32 bits (different dot kernels).
RECALL_TOLERANCE = 1e-5
_IVF_FIRST_NPROBE = 8


@dataclass(frozen=True)
class KnnParams:
    k: int = 20
    index: str = "auto"
    seed: int = 0
    target_recall: float = 0.95  # HNSW and IVF widen their search until the sampled recall reaches it
    recall_sample: int = 1000  # queries answered exactly to measure recall
    hnsw: HnswParams = field(default_factory=HnswParams)
    ivf: IvfParams = field(default_factory=IvfParams)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"--k must be at least 1 (got {self.k})")
        if self.index not in INDEXES:
            raise ConfigError(f"--index must be one of {', '.join(INDEXES)} (got {self.index!r})")
        if not 0 < self.target_recall <= 1:
            raise ConfigError(
                f"--target-recall must be in (0, 1] (got {self.target_recall})",
                hint="a share of true neighbours found: 0.95 (the default) or up to 1.0, which searches widest",
            )
        if self.recall_sample < 1:
            raise ConfigError(f"the recall sample must hold at least 1 query (got {self.recall_sample})")


@dataclass
class KnnResult:
    sims: np.ndarray  # float32 [N, k], each row descending, self excluded
    index: str  # "exact" | "hnsw" | "ivf"
    k: int  # neighbours per prompt (always below N)
    recall: float | None = None  # HNSW and IVF: measured recall@k on the sample
    recall_queries: int | None = None
    ef_search: int | None = None
    recall_by_ef: dict[int, float] = field(default_factory=dict)
    cells: int | None = None  # IVF only
    nprobe: int | None = None
    recall_by_nprobe: dict[int, float] = field(default_factory=dict)
    exact_fallback: int = 0  # IVF only: queries answered exactly (their probed cells held fewer than k rows)
    timings: dict[str, float] = field(default_factory=dict)


def choose_index(index: str, n: int) -> str:
    if index == "auto":
        return "exact" if n < AUTO_EXACT_MAX else "ivf"
    return index


def query_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def exact_neighbour_sims(
    emb: np.ndarray,
    k: int,
    rows: np.ndarray | None = None,
    *,
    block_bytes: int = EXACT_BLOCK_BYTES,
    progress: ProgressFn = no_progress,
    task: str = "exact k-NN",
) -> np.ndarray:
    """The k largest similarities of each query row (all rows, or `rows`) to every other row, descending."""
    import torch

    n = emb.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} rows (got {k})")
    queries = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    step = max(1, min(len(queries), block_bytes // (4 * n)))
    out = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), step):
        idx = queries[start : start + step]
        block = emb[start : start + len(idx)] if rows is None else emb[idx]
        sims = block @ emb.T
        sims[np.arange(len(idx)), idx] = -np.inf  # a prompt is not its own neighbour
        out[start : start + len(idx)] = torch.topk(torch.from_numpy(sims), k, dim=1).values.numpy()
        progress(task, start + len(idx), len(queries))
    return out


def recall_at_k(approx: np.ndarray, exact: np.ndarray, tol: float = RECALL_TOLERANCE) -> float:
    """Share of returned neighbours whose similarity reaches the k-th exact one (tie-aware recall@k)."""
    if approx.shape != exact.shape:
        raise ValueError(f"shape mismatch {approx.shape} vs {exact.shape}")
    threshold = exact[:, -1:].astype(np.float64) - tol
    return float((approx.astype(np.float64) >= threshold).sum() / approx.size)


def _hnsw_neighbours(
    emb: np.ndarray, k: int, params: KnnParams, progress: ProgressFn, timings: dict[str, float]
) -> KnnResult:
    hp = params.hnsw
    t0 = time.perf_counter()
    index = build_hnsw(emb, hp, params.seed, progress=progress)
    t1 = time.perf_counter()
    timings["index_build_s"] = t1 - t0

    sample, exact = _recall_truth(emb, k, params.recall_sample, params.seed, progress)
    first = min(max(32, k + 1), max(hp.max_ef, k + 1))
    ef, recall_by_ef = widen_until(
        lambda width: recall_at_k(query_hnsw(index, emb, sample, k, width, threads=query_threads()), exact),
        first=first,
        fixed=hp.ef_search,
        widest=hp.max_ef,
        target=params.target_recall,
    )
    t2 = time.perf_counter()
    timings["recall_s"] = t2 - t1

    sims = query_all(index, emb, k, ef, threads=query_threads(), progress=progress)
    timings["query_s"] = time.perf_counter() - t2
    return KnnResult(
        sims=sims,
        index="hnsw",
        k=k,
        recall=recall_by_ef[ef],
        recall_queries=len(sample),
        ef_search=ef,
        recall_by_ef=recall_by_ef,
        timings=timings,
    )


def _recall_truth(
    emb: np.ndarray, k: int, size: int, seed: int, progress: ProgressFn
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of query rows and their exact neighbour similarities: what recall is measured against."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(emb.shape[0], size=min(size, emb.shape[0]), replace=False))
    return sample, exact_neighbour_sims(emb, k, rows=sample, progress=progress, task="recall check (exact)")


def widen_until(
    recall_at: Callable[[int], float], *, first: int, fixed: int | None, widest: int, target: float
) -> tuple[int, dict[int, float]]:
    """The search width to use and the recall measured at each width tried.

    Only `fixed` when given; else from `first` up in ×1.5 steps (a doubling would overshoot the width needed)
    until the recall reaches `target` or the width reaches `widest`.
    """
    width = fixed if fixed is not None else first
    recall_by_width: dict[int, float] = {}
    while True:
        recall_by_width[width] = recall_at(width)
        if fixed is not None or recall_by_width[width] >= target or width >= widest:
            return width, recall_by_width
        width = min((3 * width + 1) // 2, widest)


def _ivf_neighbours(
    emb: np.ndarray, k: int, params: KnnParams, progress: ProgressFn, timings: dict[str, float]
) -> KnnResult:
    import torch

    n = emb.shape[0]
    ip = params.ivf
    t0 = time.perf_counter()
    index = build_cell_index(emb, ip, params.seed, progress=progress)
    t1 = time.perf_counter()
    timings["index_build_s"] = t1 - t0

    sample, exact = _recall_truth(emb, k, params.recall_sample, params.seed, progress)
    sample_t = torch.from_numpy(sample)
    searched = {"width": 0, "best": None}

    def recall_at(width: int) -> float:  # searches only the probe columns not searched yet
        searched["best"] = search_cells(index, sample_t, searched["width"], width, k, searched["best"])
        searched["width"] = width
        return recall_at_k(searched["best"].numpy(), exact)  # a query short of k candidates: blanks are misses

    widest = index.probes.shape[1]
    nprobe, recall_by_nprobe = widen_until(
        recall_at, first=min(_IVF_FIRST_NPROBE, widest), fixed=ip.nprobe, widest=widest, target=params.target_recall
    )
    t2 = time.perf_counter()
    timings["recall_s"] = t2 - t1

    sims = search_cells(index, torch.arange(n), 0, nprobe, k, progress=progress, task="search IVF cells").numpy()
    short = np.nonzero(np.isinf(sims[:, -1]))[0]
    if len(short):
        sims[short] = exact_neighbour_sims(emb, k, rows=short)
    timings["query_s"] = time.perf_counter() - t2
    return KnnResult(
        sims=sims,
        index="ivf",
        k=k,
        recall=recall_by_nprobe[nprobe],
        recall_queries=len(sample),
        cells=index.cells,
        nprobe=nprobe,
        recall_by_nprobe=recall_by_nprobe,
        exact_fallback=len(short),
        timings=timings,
    )


def neighbour_similarities(
    emb: np.ndarray, params: KnnParams, *, progress: ProgressFn = no_progress
) -> KnnResult:
    """Each row's k nearest-neighbour similarities (self excluded) with the chosen index."""
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise ValueError("embeddings must be a float32 [N, D] array")
    n = emb.shape[0]
    if n < 2:
        raise KatError(
            f"density needs at least 2 prompts, found {n}",
            hint="build more prefixes (kat pairs download, kat prefixes)",
        )
    import torch  # noqa: F401 - imported before any timer starts: its import is not index time

    if params.k >= n:  # a prompt's neighbours are the other n - 1 prompts; capping k silently hid a typo
        raise ConfigError(
            f"--k {params.k} needs more than {params.k} prompts, but there are {n}",
            hint=f"pass --k {n - 1} or less: a prompt's neighbours are the other prompts",
        )
    emb = np.ascontiguousarray(emb)
    k = params.k
    index = choose_index(params.index, n)
    timings: dict[str, float] = {}
    if index == "hnsw":
        return _hnsw_neighbours(emb, k, params, progress, timings)
    if index == "ivf":
        return _ivf_neighbours(emb, k, params, progress, timings)
    t0 = time.perf_counter()
    sims = exact_neighbour_sims(emb, k, progress=progress)
    timings["exact_s"] = time.perf_counter() - t0
    return KnnResult(sims=sims, index="exact", k=k, timings=timings)

"""A sharded, byte-reproducible hnswlib index for every row's k nearest-neighbour similarities.

How it is built, and why:
- **Shards, one thread each.** hnswlib's own parallel insertion hands items to threads dynamically, so a graph
  built with more than one thread depends on scheduling (two identical runs gave different neighbours). kat
  instead builds `shards` independent graphs side by side, each on ONE thread in a fixed order with a fixed
  seed: the build uses that many cores and every graph is the same on every run. A query searches every shard
  and keeps the best k; the shard count is a parameter, not the machine's core count, so results do not
  depend on the machine either. (`build_threads > 1` adds hnswlib's own threads per shard: faster, not
  reproducible.)
- **Insertion in k-means cell order.** Rows are inserted grouped by their nearest k-means cell (density/ivf.py)
  and the shards interleave that order, so each shard spans the whole space. Consecutive insertions then
  touch the same part of the graph, which stays in cache: on bench/bench_density.py's clustered 384-d data at
  200k rows the single-thread build took 76 s instead of 129 s at the same recall (0.953 at ef 64). Queries
  run in the same order for the same reason (15 s instead of 26 s at ef 64).
- **Measured at 200k (2 cores, M 16, ef_construction 200):** two shards built in 36 s wall, recall 0.951 at
  ef 32 and 0.960 at ef 48. Cheaper graphs do not pay on clustered data: with ef_construction 100 recall
  stalls (0.93 at ef 128), with 64 at 0.89.

Queries only read the graphs, so they run on all cores with results byte-identical to one thread (tested).
Only similarity values are returned. This module knows nothing about recall targets, texts, weights or files.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass

import numpy as np

from katcli.density.ivf import cell_order
from katcli.errors import ConfigError, KatError
from katcli.progress import ProgressFn, no_progress

_BUILD_BLOCK = 10_000
_QUERY_BLOCK = 10_000


@dataclass(frozen=True)
class HnswParams:
    m: int = 16  # links per node; see the module docstring for how the defaults were chosen
    ef_construction: int = 200
    ef_search: int | None = None  # None: widen until the sampled recall reaches the target (KnnParams)
    max_ef: int = 1024
    shards: int = 2  # independent graphs built in parallel, one thread each (reproducible)
    build_threads: int = 1  # hnswlib threads per shard; 1 = byte-reproducible (see the module docstring)

    def __post_init__(self) -> None:
        if self.m < 2:
            raise ConfigError(f"HNSW M must be at least 2 (got {self.m})")
        if self.ef_construction < 1 or self.max_ef < 1:
            raise ConfigError("HNSW ef values must be at least 1")
        if self.ef_search is not None and self.ef_search < 1:
            raise ConfigError(f"HNSW ef_search must be at least 1 (got {self.ef_search})")
        if self.shards < 1:
            raise ConfigError(f"HNSW shards must be at least 1 (got {self.shards})")
        if self.build_threads < 1:
            raise ConfigError(f"--build-threads must be at least 1 (got {self.build_threads})")


@dataclass
class ShardedHnsw:
    graphs: list  # one hnswlib.Index per shard; labels are row numbers
    order: np.ndarray  # every row once, in insertion (cell) order: the cache-friendly order to query in


def shard_rows(order: np.ndarray, shards: int) -> list[np.ndarray]:
    """Every `shards`-th row of the insertion order, so each shard spans every cell."""
    return [order[i::shards] for i in range(min(shards, len(order)))]


def build_hnsw(emb: np.ndarray, params: HnswParams, seed: int, *, progress: ProgressFn = no_progress) -> ShardedHnsw:
    """`params.shards` hnswlib cosine graphs over interleaved parts of the rows, built side by side."""
    import hnswlib

    n, dim = emb.shape
    order = cell_order(emb, seed, progress=progress)
    parts = shard_rows(order, params.shards)
    graphs: list = [None] * len(parts)
    inserted = [0] * len(parts)
    stop = threading.Event()

    def build(i: int) -> None:
        rows = parts[i]
        graph = hnswlib.Index(space="cosine", dim=dim)
        graph.init_index(max_elements=len(rows), ef_construction=params.ef_construction, M=params.m, random_seed=seed)
        # Adding in blocks with one thread inserts in exactly the same order as one call; the blocks only buy
        # progress reports and a place to stop at after Ctrl-C (hnswlib releases the GIL while inserting).
        for start in range(0, len(rows), _BUILD_BLOCK):
            if stop.is_set():
                return
            block = rows[start : start + _BUILD_BLOCK]
            graph.add_items(emb[block], block, num_threads=params.build_threads)
            inserted[i] = start + len(block)
        graphs[i] = graph

    # Progress is reported from this thread only: the callback need not be thread-safe.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(parts)) as pool:
        futures = [pool.submit(build, i) for i in range(len(parts))]
        try:
            pending = set(futures)
            while pending:
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_EXCEPTION
                )
                progress("build HNSW index", sum(inserted), n)
                for future in done:
                    future.result()  # a worker's exception, re-raised here at once
        except BaseException:  # an error or Ctrl-C: the other shards stop at their next block
            stop.set()
            raise
    return ShardedHnsw(graphs=graphs, order=order)


def merge_shard_results(
    labels: list[np.ndarray], sims: list[np.ndarray], rows: np.ndarray, k: int
) -> np.ndarray:
    """The k largest similarities per row over all shards' results, the row itself left out, descending."""
    merged = []
    for lab, sim in zip(labels, sims):
        merged.append(np.where(lab == rows.astype(lab.dtype)[:, None], -np.inf, sim).astype(np.float32))
    both = np.concatenate(merged, axis=1)
    return -np.sort(-both, axis=1)[:, :k]


def query_hnsw(
    index: ShardedHnsw,
    emb: np.ndarray,
    rows: np.ndarray,
    k: int,
    ef: int,
    *,
    progress: ProgressFn = no_progress,
    task: str | None = None,
    threads: int = 1,
) -> np.ndarray:
    """The k largest similarities (self excluded) of each row in `rows`, in that order, at search width ef.

    Each query only reads the graphs, so the result does not depend on `threads`.
    """
    out = np.empty((len(rows), k), dtype=np.float32)
    for graph in index.graphs:
        graph.set_ef(max(ef, k + 1))
    for start in range(0, len(rows), _QUERY_BLOCK):
        idx = rows[start : start + _QUERY_BLOCK]
        labels, sims = [], []
        for graph in index.graphs:
            want = min(k + 1, graph.get_current_count())  # a shard may hold fewer rows than k + 1
            try:
                lab, dist = graph.knn_query(emb[idx], k=want, num_threads=threads)
            except RuntimeError as exc:  # hnswlib: fewer results reachable in the graph than asked for
                raise KatError(
                    f"the HNSW search found fewer than {want} neighbours ({exc})", hint="use --index exact"
                ) from None
            labels.append(lab)
            sims.append(1.0 - dist)
        out[start : start + len(idx)] = merge_shard_results(labels, sims, idx, k)
        if task is not None:
            progress(task, start + len(idx), len(rows))
    return out


def query_all(
    index: ShardedHnsw, emb: np.ndarray, k: int, ef: int, *, threads: int, progress: ProgressFn = no_progress
) -> np.ndarray:
    """Every row's k largest similarities, row order; queried in insertion order for cache locality."""
    found = query_hnsw(index, emb, index.order, k, ef, progress=progress, task="query HNSW index", threads=threads)
    out = np.empty_like(found)
    out[index.order] = found
    return out

"""The sharded HNSW index: shards partition the rows, results merge across shards, builds are reproducible."""

from __future__ import annotations

import time

import numpy as np
import pytest
from densitykit import clustered

from katcli.density.hnsw import HnswParams, build_hnsw, merge_shard_results, query_all, shard_rows
from katcli.density.knn import KnnParams, exact_neighbour_sims, neighbour_similarities, recall_at_k


def test_shards_interleave_the_insertion_order_and_cover_every_row_once():
    order = np.array([5, 2, 7, 0, 1, 6, 3, 4])
    parts = shard_rows(order, 3)
    assert [p.tolist() for p in parts] == [[5, 0, 3], [2, 1, 4], [7, 6]]
    assert len(shard_rows(order[:2], 3)) == 2  # never an empty shard


def test_merge_keeps_the_best_k_over_shards_without_the_row_itself():
    rows = np.array([0, 1])
    labels = [np.array([[0, 4, 5], [7, 8, 9]]), np.array([[6, 2, 3], [1, 2, 3]])]
    sims = [np.array([[1.0, 0.7, 0.2], [0.9, 0.5, 0.4]]), np.array([[0.8, 0.3, 0.1], [1.0, 0.95, 0.1]])]
    out = merge_shard_results(labels, sims, rows, 3)
    np.testing.assert_array_equal(out, np.array([[0.8, 0.7, 0.3], [0.95, 0.9, 0.5]], dtype=np.float32))
    assert out.dtype == np.float32


def test_every_row_is_in_exactly_one_shard_graph():
    emb = clustered(3000, dim=16, seed=2)
    index = build_hnsw(emb, HnswParams(m=8, ef_construction=40, shards=3), seed=0)
    labels = np.concatenate([np.asarray(g.get_ids_list()) for g in index.graphs])
    assert len(index.graphs) == 3 and sorted(labels.tolist()) == list(range(3000))
    assert sorted(index.order.tolist()) == list(range(3000))


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_any_shard_count_finds_the_exact_neighbours_at_a_wide_search(shards):
    emb = clustered(1500, dim=16, seed=4)
    index = build_hnsw(emb, HnswParams(shards=shards), seed=0)
    sims = query_all(index, emb, 5, ef=200, threads=2)
    np.testing.assert_allclose(sims, exact_neighbour_sims(emb, 5), atol=1e-5)


def test_a_shard_smaller_than_k_plus_one_still_answers():
    emb = clustered(7, dim=8, seed=1)
    res = neighbour_similarities(emb, KnnParams(k=6, index="hnsw", hnsw=HnswParams(shards=3)))
    np.testing.assert_allclose(res.sims, exact_neighbour_sims(emb, 6), atol=1e-5)


def test_sharded_builds_are_byte_identical_and_reach_the_recall():
    emb = clustered(4000, dim=32, seed=9)
    params = KnnParams(k=15, index="hnsw", seed=3, hnsw=HnswParams(m=8, ef_construction=60, shards=2))
    a = neighbour_similarities(emb, params)
    b = neighbour_similarities(emb, params)
    assert a.sims.tobytes() == b.sims.tobytes() and a.recall_by_ef == b.recall_by_ef
    assert a.recall >= 0.95
    assert recall_at_k(a.sims, exact_neighbour_sims(emb, 15)) >= 0.94  # all rows, not only the sample


def test_a_failing_shard_build_raises_and_stops_the_others(monkeypatch):
    import hnswlib

    calls = []
    real = hnswlib.Index.add_items

    def add_items(self, data, ids, num_threads=1):
        calls.append(len(ids))
        if len(calls) == 3:
            raise MemoryError("simulated")
        time.sleep(0.05)  # slow enough that the other shard is still building when the error surfaces
        return real(self, data, ids, num_threads=num_threads)

    monkeypatch.setattr("katcli.density.hnsw._BUILD_BLOCK", 100)
    monkeypatch.setattr(hnswlib.Index, "add_items", add_items)
    with pytest.raises(MemoryError, match="simulated"):
        build_hnsw(clustered(2000, dim=8, seed=0), HnswParams(m=4, ef_construction=10), seed=0)
    assert len(calls) < 10  # 2000 rows in 20 blocks of 100: the other shard stopped early

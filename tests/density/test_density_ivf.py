"""The IVF path: exact when every cell is probed, measured recall, widening, self-exclusion, fallback, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
import torch
from densitykit import brute_force, clustered, planted, unit

from katcli.density.estimate import estimate_density
from katcli.density.ivf import IvfParams, build_cell_index, default_cells, search_cells
from katcli.density.knn import KnnParams, exact_neighbour_sims, neighbour_similarities, recall_at_k
from katcli.density.weights import WeightParams
from katcli.errors import ConfigError


def ivf(emb, k=10, seed=0, target_recall=0.95, recall_sample=1000, **kwargs):
    params = KnnParams(
        k=k, index="ivf", seed=seed, target_recall=target_recall, recall_sample=recall_sample, ivf=IvfParams(**kwargs)
    )
    return neighbour_similarities(emb, params)


def test_probing_every_cell_is_exact():
    emb = clustered(600, dim=16, seed=1)
    res = ivf(emb, k=7, cells=12, nprobe=12)
    np.testing.assert_allclose(res.sims, brute_force(emb, 7), atol=2e-6)
    assert np.all(np.diff(res.sims, axis=1) <= 0)
    assert (res.index, res.cells, res.nprobe, res.recall, res.exact_fallback) == ("ivf", 12, 12, 1.0, 0)


def test_self_is_excluded_but_a_duplicate_counts():
    emb = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]]))
    res = ivf(emb, k=1, cells=2, nprobe=2)
    assert res.sims[0, 0] == pytest.approx(1.0) and res.sims[1, 0] == pytest.approx(1.0)
    assert res.sims[2, 0] == pytest.approx(0.8)  # not itself (1.0)


def test_cells_are_a_partition_and_each_rows_own_cell_comes_first():
    emb = clustered(2000, dim=16, seed=3)
    index = build_cell_index(emb, IvfParams(cells=30, nprobe=4), seed=0)
    members = torch.cat([index.members(c) for c in range(index.cells)])
    assert sorted(members.tolist()) == list(range(2000))
    own = (torch.from_numpy(emb) @ index.centroids.T).argmax(dim=1)
    assert torch.equal(index.probes[:, 0].long(), own)
    for row in (0, 777, 1999):
        cell = int(index.probes[row, 0])
        assert int(index.members(cell)[index.slot[row]]) == row


def test_searching_columns_in_steps_equals_one_pass():
    emb = clustered(1500, dim=16, seed=4)
    index = build_cell_index(emb, IvfParams(cells=25, nprobe=9), seed=0)
    rows = torch.arange(0, 1500, 7)
    whole = search_cells(index, rows, 0, 9, 5)
    steps = search_cells(index, rows, 0, 2, 5)
    steps = search_cells(index, rows, 2, 6, 5, steps)
    steps = search_cells(index, rows, 6, 9, 5, steps)
    # Equal up to the last float bits: BLAS picks its kernel by the product's shape.
    torch.testing.assert_close(whole, steps, rtol=0, atol=1e-6)


def test_ivf_agrees_with_exact_on_a_clustered_set():
    emb = clustered(4000, dim=32, seed=5)
    weights = WeightParams()
    exact = estimate_density(emb, KnnParams(k=20, index="exact"), weights)
    approx = estimate_density(emb, KnnParams(k=20, index="ivf", seed=1), weights)
    rho = spearmanr(exact.weights, approx.weights).statistic
    assert rho >= 0.99, rho
    assert approx.knn.index == "ivf" and approx.knn.recall_queries == 1000
    assert approx.knn.cells == default_cells(4000) == 253
    assert approx.knn.recall >= 0.95  # the default target recall, reached by widening nprobe
    assert approx.knn.recall == approx.knn.recall_by_nprobe[approx.knn.nprobe]


def test_recall_estimate_is_the_measured_recall_of_the_whole_run():
    emb = clustered(3000, dim=32, seed=7)
    res = ivf(emb, k=10, cells=60, nprobe=1, recall_sample=3000)
    truth = recall_at_k(res.sims, exact_neighbour_sims(emb, 10))
    assert res.exact_fallback == 0
    assert res.recall == pytest.approx(truth, abs=1e-12)  # sample = all rows: same number
    assert res.recall < 0.99  # one probed cell really is measured as weak, not assumed
    assert list(res.recall_by_nprobe) == [1]  # a fixed nprobe is not tuned


def test_nprobe_is_widened_by_half_until_the_target_recall():
    emb = clustered(3000, dim=32, seed=8)
    res = ivf(emb, k=20, cells=200, target_recall=0.99)
    widths = list(res.recall_by_nprobe)
    assert widths[0] == 8 and len(widths) >= 2
    assert all(b == (3 * a + 1) // 2 for a, b in zip(widths, widths[1:]))
    assert res.recall >= 0.99
    assert all(r < 0.99 for r in list(res.recall_by_nprobe.values())[:-1])
    assert res.recall_by_nprobe == dict(sorted(res.recall_by_nprobe.items()))


def test_widening_stops_at_max_nprobe():
    emb = clustered(2000, dim=32, seed=8)
    res = ivf(emb, k=20, cells=200, target_recall=1.0, max_nprobe=12)
    assert list(res.recall_by_nprobe) == [8, 12] and res.nprobe == 12


def test_queries_short_of_k_candidates_are_answered_exactly():
    emb = clustered(300, dim=16, seed=6)
    res = ivf(emb, k=6, cells=300, nprobe=2)  # one row per cell: a query meets one other row, not six
    assert res.exact_fallback == 300
    np.testing.assert_allclose(res.sims, brute_force(emb, 6), atol=2e-6)


def test_ivf_is_byte_identical_for_a_seed_and_any_thread_count():
    emb = clustered(3000, dim=32, seed=9)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ivf(emb, k=15, seed=3)
        torch.set_num_threads(2)
        two = ivf(emb, k=15, seed=3)
        again = ivf(emb, k=15, seed=3)
    finally:
        torch.set_num_threads(before)
    assert one.sims.tobytes() == two.sims.tobytes() == again.sims.tobytes()
    assert one.recall_by_nprobe == two.recall_by_nprobe
    other = ivf(emb, k=15, seed=4)
    assert other.sims.tobytes() != one.sims.tobytes()  # the seed does reach the cells


def test_planted_cluster_every_unrelated_prompt_outweighs_every_clustered_one():
    emb = planted(500, 20, dim=64, seed=0)
    res = estimate_density(emb, KnnParams(k=20, index="ivf"), WeightParams())
    assert res.weights[500:].min() > res.weights[:500].max()


def test_default_cells_grow_as_four_root_n_and_never_exceed_n():
    assert [default_cells(n) for n in (1, 2, 10, 10_000, 1_000_000)] == [1, 2, 10, 400, 4000]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cells": 0}, "IVF cells must be at least 1 (got 0)"),
        ({"nprobe": 0}, "IVF nprobe must be at least 1 (got 0)"),
    ],
)
def test_bad_ivf_parameters(kwargs, message):
    with pytest.raises(ConfigError) as err:
        IvfParams(**kwargs)
    assert err.value.message == message


def test_a_target_recall_above_one_is_refused():
    with pytest.raises(ConfigError) as err:
        KnnParams(index="ivf", target_recall=1.5)
    assert err.value.message == "--target-recall must be in (0, 1] (got 1.5)"


def test_more_cells_than_rows_is_refused():
    with pytest.raises(ConfigError, match=r"IVF cells must be at most the number of prompts \(5\), got 6"):
        ivf(clustered(5, dim=8), k=2, cells=6)

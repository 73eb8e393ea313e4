"""k-NN similarities: exact (blocked) vs brute force, HNSW vs exact, recall, determinism, and the planted clusters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from densitykit import brute_force, clustered, planted, unit

from katcli.density.estimate import estimate_density
from katcli.density.hnsw import HnswParams, build_hnsw, query_hnsw
from katcli.density.knn import (
    AUTO_EXACT_MAX,
    KnnParams,
    choose_index,
    exact_neighbour_sims,
    neighbour_similarities,
    recall_at_k,
)
from katcli.density.weights import WeightParams
from katcli.errors import ConfigError, KatError


def test_exact_matches_brute_force_in_any_block_size():
    emb = clustered(300, dim=16, seed=1)
    ref = brute_force(emb, 7)
    whole = exact_neighbour_sims(emb, 7)
    tiny_blocks = exact_neighbour_sims(emb, 7, block_bytes=4 * 300 * 3)  # 3 rows per block: 100 blocks
    np.testing.assert_allclose(whole, ref, atol=2e-6)
    np.testing.assert_allclose(tiny_blocks, ref, atol=2e-6)
    assert np.all(np.diff(whole, axis=1) <= 0)  # descending


def test_exact_on_a_row_subset_and_progress():
    emb = clustered(200, dim=16, seed=2)
    rows = np.array([3, 50, 199])
    calls = []
    got = exact_neighbour_sims(
        emb, 5, rows=rows, block_bytes=4 * 200 * 2, progress=lambda t, d, n: calls.append((t, d, n))
    )
    np.testing.assert_allclose(got, brute_force(emb, 5)[rows], atol=2e-6)
    assert calls == [("exact k-NN", 2, 3), ("exact k-NN", 3, 3)]


def test_self_is_excluded_but_a_duplicate_counts():
    emb = unit(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    sims = exact_neighbour_sims(emb, 1)
    assert sims[0, 0] == pytest.approx(1.0) and sims[1, 0] == pytest.approx(1.0)  # each other's duplicate
    assert sims[2, 0] == pytest.approx(0.8)  # not itself (1.0)


def test_auto_switches_to_ivf_at_the_threshold():
    assert AUTO_EXACT_MAX == 50_000
    assert choose_index("auto", AUTO_EXACT_MAX - 1) == "exact"
    assert choose_index("auto", AUTO_EXACT_MAX) == "ivf"  # the fastest on CPUs from here (bench_density)
    assert choose_index("exact", 10**7) == "exact"
    assert choose_index("hnsw", 10**7) == "hnsw"  # still there by name


def test_k_must_be_below_the_number_of_prompts_and_two_are_needed():
    emb = clustered(6, dim=8)
    res = neighbour_similarities(emb, KnnParams(k=5, index="exact"))
    assert res.k == 5 and res.sims.shape == (6, 5)
    for k in (6, 20):
        with pytest.raises(ConfigError) as caught:
            neighbour_similarities(emb, KnnParams(k=k, index="exact"))
        assert caught.value.message == f"--k {k} needs more than {k} prompts, but there are 6"
        assert caught.value.hint == "pass --k 5 or less: a prompt's neighbours are the other prompts"
    with pytest.raises(KatError, match="density needs at least 2 prompts, found 1"):
        neighbour_similarities(emb[:1], KnnParams(k=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "--k must be at least 1 (got 0)"),
        ({"index": "faiss"}, "--index must be one of auto, exact, hnsw, ivf (got 'faiss')"),
    ],
)
def test_bad_knn_parameters_name_the_flag(kwargs, message):
    with pytest.raises(ConfigError) as err:
        KnnParams(**kwargs)
    assert err.value.message == message


def test_recall_counts_ties_as_hits():
    exact = np.array([[0.9, 0.8, 0.8]], dtype=np.float32)
    assert recall_at_k(np.array([[0.9, 0.8, 0.8]], dtype=np.float32), exact) == 1.0
    assert recall_at_k(np.array([[0.9, 0.8, 0.7]], dtype=np.float32), exact) == pytest.approx(2 / 3)


def test_planted_cluster_every_unrelated_prompt_outweighs_every_clustered_one():
    emb = planted(500, 20, dim=64, seed=0)
    for index in ("exact", "hnsw"):
        res = estimate_density(emb, KnnParams(k=20, index=index), WeightParams())
        w = res.weights
        assert w[500:].min() > w[:500].max(), index
        assert set(res.rarest(5)) <= set(range(500, 520)) and set(res.densest(5)) <= set(range(500))
        assert w.sum() == pytest.approx(1.0)


def test_hnsw_agrees_with_exact_on_a_clustered_set():
    emb = clustered(4000, dim=32, seed=5)
    weights = WeightParams()
    exact = estimate_density(emb, KnnParams(k=20, index="exact"), weights)
    approx = estimate_density(emb, KnnParams(k=20, index="hnsw", seed=1), weights)
    rho = spearmanr(exact.weights, approx.weights).statistic
    assert rho >= 0.99, rho
    assert approx.knn.index == "hnsw" and approx.knn.recall_queries == 1000
    assert approx.knn.recall >= 0.95  # the default target recall, reached by widening ef
    assert approx.knn.recall == approx.knn.recall_by_ef[approx.knn.ef_search]


def test_recall_estimate_is_the_measured_recall_of_the_whole_run():
    emb = clustered(3000, dim=32, seed=7)
    hp = HnswParams(m=4, ef_construction=8, ef_search=11)
    params = KnnParams(k=10, index="hnsw", recall_sample=3000, hnsw=hp)
    res = neighbour_similarities(emb, params)
    truth = recall_at_k(res.sims, exact_neighbour_sims(emb, 10))
    assert res.recall == pytest.approx(truth, abs=1e-12)  # sample = all rows: same number
    assert res.recall < 0.999  # a deliberately weak index really is measured, not assumed
    assert list(res.recall_by_ef) == [11]  # a fixed ef is not tuned


def test_ef_is_widened_until_the_target_recall():
    emb = clustered(3000, dim=32, seed=8)
    hp = HnswParams(m=4, ef_construction=10, max_ef=512)
    res = neighbour_similarities(emb, KnnParams(k=20, index="hnsw", target_recall=0.99, hnsw=hp))
    efs = list(res.recall_by_ef)
    assert efs[0] == 32 and all(b == (3 * a + 1) // 2 or b == 512 for a, b in zip(efs, efs[1:]))
    assert len(efs) >= 2
    assert res.recall >= 0.99 or res.ef_search == 512
    assert all(r < 0.99 for r in list(res.recall_by_ef.values())[:-1])


def test_hnsw_is_byte_identical_for_a_seed():
    emb = clustered(3000, dim=32, seed=9)
    params = KnnParams(k=15, index="hnsw", seed=3, hnsw=HnswParams(m=8, ef_construction=40))
    a = neighbour_similarities(emb, params)
    b = neighbour_similarities(emb, params)
    assert a.sims.tobytes() == b.sims.tobytes()
    assert a.recall_by_ef == b.recall_by_ef


def test_query_rows_exclude_themselves():
    emb = clustered(500, dim=16, seed=4)
    index = build_hnsw(emb, HnswParams(), seed=0)
    rows = np.arange(500)
    sims = query_hnsw(index, emb, rows, 5, ef=200)
    np.testing.assert_allclose(sims, brute_force(emb, 5), atol=1e-5)


def test_threaded_queries_are_byte_identical_to_single_threaded_ones():
    emb = clustered(4000, dim=32, seed=11)
    index = build_hnsw(emb, HnswParams(m=8, ef_construction=32), seed=2)
    rows = np.arange(4000)
    one = query_hnsw(index, emb, rows, 10, ef=40, threads=1)
    for threads in (2, 4):
        assert query_hnsw(index, emb, rows, 10, ef=40, threads=threads).tobytes() == one.tobytes()

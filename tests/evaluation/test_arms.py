"""Arms of replicates: --seeds, NAME-s<seed>, which runs are one arm, and across-seed accuracy and Δ."""

from __future__ import annotations

import numpy as np
import pytest

from katcli.evaluation import arms as A


def test_seeds_spec_takes_a_count_or_a_list():
    assert A.seeds_spec("3") == [0, 1, 2] and A.seeds_spec("1") == [0]
    assert A.seeds_spec("4,1, 7") == [4, 1, 7]
    for bad in ("0", "a", "1,1", "-1", "1,,2"):
        with pytest.raises(ValueError):
            A.seeds_spec(bad)
    assert A.replicate_name("uniform", 2) == "uniform-s2" and A.arm_name("uniform-s2") == "uniform"
    assert A.arm_name("uniform") == "uniform" and A.arm_name("my-sft") == "my-sft"


def test_runs_differing_only_in_seed_are_one_arm():
    cfg = {"lr": 1e-3, "pair_weighting": "uniform", "seed": 0, "init": "sft_checkpoints/uniform-s0"}
    configs = {
        "uniform-s0": {**cfg, "name": "uniform-s0"},
        # the split seed (0) is recorded where it differs from the seed
        "uniform-s1": {**cfg, "seed": 1, "split_seed": 0, "name": "uniform-s1", "init": "sft_checkpoints/uniform-s1"},
        "uniform-s2": {**cfg, "seed": 2, "split_seed": 0, "name": "uniform-s2", "init": "sft_checkpoints/uniform-s2"},
        "density-s0": {**cfg, "pair_weighting": "density"}, "density-s1": {**cfg, "pair_weighting": "density",
                                                                           "lr": 3e-3, "seed": 1},
        "solo": cfg,
    }
    arms = A.replicate_arms(configs)
    assert arms["uniform"] == ["uniform-s0", "uniform-s1", "uniform-s2"]
    assert arms["density-s0"] == ["density-s0"] and arms["density-s1"] == ["density-s1"]  # lr differs: not one arm
    assert arms["solo"] == ["solo"]
    old = {"old-s0": {**cfg, "name": "old-s0"}, "old-s1": {**cfg, "seed": 1, "name": "old-s1"}}
    assert A.replicate_arms(old) == {"old-s0": ["old-s0"], "old-s1": ["old-s1"]}  # old runs: split moved with seed
    other_start = {**configs, "uniform-s2": {**configs["uniform-s2"], "init": "sft_checkpoints/other-s2"}}
    assert A.replicate_arms(other_start)["uniform-s2"] == ["uniform-s2"]  # started from another arm


def test_replicates_pair_by_seed_or_with_a_single_start():
    assert A.pair_replicates([0, 1, 2], [0, 1, 2]) == [(0, 0), (1, 1), (2, 2)]
    assert A.pair_replicates([0, 1, 2], [0]) == [(0, 0), (1, 0), (2, 0)]
    assert A.pair_replicates([0, 2], [0, 1, 2]) == [(0, 0), (2, 2)]


def test_across_seed_accuracy_and_a_difference_whose_seeds_disagree():
    rng = np.random.default_rng(0)
    n = 300
    pids = [f"p{i // 2}" for i in range(n)]
    sources = ["hh" if i % 3 else "uf" for i in range(n)]
    quint = [i % 5 for i in range(n)]
    base = rng.random(n) < 0.6
    a = {s: base.copy() for s in range(3)}
    # arm b: seed 0 fixes 20 of a's wrong pairs, seed 1 breaks 20 right ones, seed 2 fixes 15: the seeds disagree
    wrong, right = np.flatnonzero(~base), np.flatnonzero(base)
    b = {s: base.copy() for s in range(3)}
    b[0][wrong[:20]] = True
    b[1][right[:20]] = False
    b[2][wrong[20:35]] = True
    acc = A.accuracy_across_seeds(b, pids, sources, quint)
    assert acc["n_seeds"] == 3 and acc["overall"]["n"] == 3 * n
    assert acc["overall"]["value"] == pytest.approx(np.mean([b[s].mean() for s in range(3)]))
    assert 0.0 <= acc["overall"]["ci95"][0] < acc["overall"]["value"] < acc["overall"]["ci95"][1] <= 1.0
    assert len(acc["by_quintile"]) == 5 and set(acc["by_source"]) == {"hh", "uf"}
    d = A.accuracy_difference_across_seeds(a, b, pids, sources, quint)
    lo, hi = d["overall"]["ci95"]
    assert lo < 0.0 < hi and d["overall"]["p"] > 0.05 and d["overall"]["mdd80"] > abs(d["overall"]["value"])
    assert d["paired_seeds"] == [[0, 0], [1, 1], [2, 2]]
    assert all(q["p_holm"] >= q["p"] for q in d["by_quintile"])
    # every seed agreeing on +20 pairs: the interval excludes 0
    agree = {s: base.copy() for s in range(3)}
    for s in range(3):
        agree[s][wrong[:20]] = True
    assert A.accuracy_difference_across_seeds(a, agree, pids, sources)["overall"]["ci95"][0] > 0.0


def test_one_set_of_quintile_edges_cuts_a_subset_where_the_whole_set_was_cut():
    from katcli.train.metrics import QUINTILE_KEYS, density_quintiles, quintile_edges

    rng = np.random.default_rng(3)
    pids = [f"p{i}" for i in range(200)]
    weights = {p: float(w) for p, w in zip(pids, rng.lognormal(size=200))}
    edges = quintile_edges(pids, weights)
    whole, _ = density_quintiles(pids, weights)
    assert density_quintiles(pids, weights, edges)[0] == whole  # the edges reproduce the equal-count cut
    sub = pids[:64]  # GRPO's 64 evaluation prompts: cut by the held-out set's edges, not their own
    own, _ = density_quintiles(sub, weights)
    shared, ranges = density_quintiles(sub, weights, edges)
    assert shared == whole[:64] and own != shared
    assert all(r == [] or r[1] <= (edges + [np.inf])[q] for q, r in enumerate(ranges))
    assert QUINTILE_KEYS[0] == "q1_commonest" and QUINTILE_KEYS[-1] == "q5_rarest"

"""Across-seed figures of policy arms: every measure and group of `katcli.evaluation.measures`, over replicates.

An arm's replicates answer the same prompts with the same sample seeds, so each measure is a seeds × prompts
table: a per-prompt measure is averaged by `katcli.evaluation.replicates.across_seeds_mean` (inside its range), a
set measure combines the replicates' values and their jackknife block deletions (the same blocks for every
replicate) by `across_seeds_set`. The Δ of an arm against the baseline arm pairs replicates by seed (or every
replicate with a single baseline replicate, `katcli.evaluation.arms.pair_replicates`) and prompts by position (the
one prompt draw), with its p-value, `mdd80` and, over the quintiles, Holm's `p_holm`. Pure functions of outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from katcli.evaluation import jackknife as J
from katcli.evaluation import replicates as R
from katcli.evaluation.arms import pair_replicates
from katcli.evaluation.measures import PolicyOutputs, groups_of, measure_range, per_prompt_values, set_stats
from katcli.evaluation.power import holm, mdd


def _json(est: Any) -> dict[str, Any]:
    out = est.to_json()
    if est.p is not None and out.get("mdd80") is None and est.se is not None:
        out["mdd80"] = None if (m := mdd(est.se, est.df)) is None else round(m, 6)
    return out


def _range(key: str, n: int) -> R.Range:
    lo, hi = measure_range(key, n)
    return R.Range(lo, hi)


def _replicate_tables(
    reps: Sequence[PolicyOutputs], base: PolicyOutputs, groups: Mapping[str, np.ndarray], n_items: int,
    rm_names: Sequence[str], seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[J.SetDraws]]]]:
    """Per-prompt measures as seeds × prompts matrices; set measures' draws per group and replicate."""
    values = [per_prompt_values(o, base, rm_names) for o in reps]
    matrices = {k: np.array([[np.nan if v is None else v for v in vals[k]] for vals in values]) for k in values[0]}
    draws: dict[str, dict[str, list[J.SetDraws]]] = {}
    stats = [set_stats(o) for o in reps]
    for gname, members in groups.items():
        full = np.zeros(n_items, dtype=np.int64)
        full[members] = 1
        block = J.blocks(len(members), seed, gname)
        for key in stats[0]:
            draws.setdefault(key, {})[gname] = [J.set_draws(s[key], full, members, block) for s in stats]
    return matrices, draws


def _set_across(ds: Sequence[J.SetDraws], rng: R.Range, n: int) -> Any:
    return R.across_seeds_set([d.theta for d in ds], np.stack([d.reps for d in ds]), rng, n)


def arm_figures(
    reps: Sequence[PolicyOutputs], base: PolicyOutputs, *, sources: Sequence[str], quintiles: Sequence[int | None],
    rm_names: Sequence[str], seed: int,
) -> dict[str, Any]:
    """`{measure: {group: {value, ci95, n}}, "n_seeds": S}` over an arm's replicates (same prompts, in order)."""
    groups = groups_of(sources, quintiles)
    matrices, draws = _replicate_tables(reps, base, groups, len(sources), rm_names, seed)
    out: dict[str, Any] = {"n_seeds": len(reps)}
    for key, m in matrices.items():
        out[key] = {g: _json(R.across_seeds_mean(m[:, idx], _range(key, len(idx)))) if len(idx) else
                    {"value": None, "ci95": [None, None], "n": 0} for g, idx in groups.items()}
    for key, by_group in draws.items():
        out[key] = {g: _json(_set_across(ds, _range(key, len(groups[g])), len(groups[g])))
                    for g, ds in by_group.items()}
    return out


def arm_difference(
    arm: Mapping[int, PolicyOutputs], base_arm: Mapping[int, PolicyOutputs], base: PolicyOutputs, *,
    sources: Sequence[str], quintiles: Sequence[int | None], rm_names: Sequence[str], seed: int,
) -> dict[str, Any]:
    """Δ = arm − baseline arm per measure and group, replicates paired by seed, prompts by position."""
    pairs = pair_replicates(sorted(arm), sorted(base_arm))
    groups = groups_of(sources, quintiles)
    ma, da = _replicate_tables([arm[a] for a, _ in pairs], base, groups, len(sources), rm_names, seed)
    mb, db = _replicate_tables([base_arm[b] for _, b in pairs], base, groups, len(sources), rm_names, seed)
    out: dict[str, Any] = {"paired_seeds": [[a, b] for a, b in pairs]}
    for key in ma:
        diff = ma[key] - mb[key]
        out[key] = {}
        for g, idx in groups.items():
            rng = R.difference_range(_range(key, len(idx)))
            est = R.with_test(R.across_seeds_mean(diff[:, idx], rng), rng) if len(idx) else None
            out[key][g] = _json(est) if est is not None else {"value": None, "ci95": [None, None], "n": 0}
    for key in da:
        out[key] = {}
        for g, ds in da[key].items():
            rng = R.difference_range(_range(key, len(groups[g])))
            diffs = [x - y for x, y in zip(ds, db[key][g])]
            out[key][g] = _json(R.with_test(_set_across(diffs, rng, len(groups[g])), rng))
    for key, by_group in out.items():
        if key == "paired_seeds" or not all(f"Q{k}" in by_group for k in range(1, 6)):
            continue
        qs = [by_group[f"Q{k}"] for k in range(1, 6)]
        for fig, adj in zip(qs, holm([q.get("p") for q in qs])):
            if adj is not None:
                fig["p_holm"] = float(f"{adj:.6g}")
    return out

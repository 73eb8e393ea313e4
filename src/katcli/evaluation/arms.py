"""Arms and their replicates: which runs are one configuration trained with several seeds, and the across-seed
figures `kat eval rm` reports for them.

- `replicate_arms(configs)`: runs whose recorded configuration differs only in the seed are replicates of one arm;
  the arm is named by the runs' common name less a trailing `-s<seed>` (`uniform-s0`, `uniform-s1` → `uniform`).
- `seeds_spec("0,1,2")` / `seeds_spec("3")`: the seeds of `--seeds` (a list, or a count meaning 0 … N − 1), and
  `replicate_name(name, seed)`: `NAME-s<seed>`.
- `pair_replicates(seeds_a, seeds_b)`: replicate i of one arm with replicate i (the same seed) of the other; an arm
  with a single replicate (one SFT start for every seed of a DPO arm) pairs with each of the other's.
- `accuracy_across_seeds` / `accuracy_difference_across_seeds`: an arm's held-out accuracy overall, per source and
  per quintile from its replicates' per-pair correctness (`katcli.evaluation.replicates`: crossed seeds × prompts,
  pairs clustered by prompt), and the difference of two arms paired by seed and by pair, with p, MDD and Holm over
  the quintiles.

Pure functions of configurations and arrays; nothing about files or models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from katcli.evaluation import replicates as R
from katcli.evaluation.power import holm, mdd

REPLICATE_SUFFIX = re.compile(r"^(?P<arm>.+)-s(?P<seed>\d+)$")
ACCURACY = R.Range(0.0, 1.0, proportion=True)


def seeds_spec(text: str) -> list[int]:
    """`--seeds`: `0,1,2` (those seeds, in order, distinct) or `3` (seeds 0, 1, 2). ValueError on anything else."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"--seeds takes a count (3) or a list of seeds (0,1,2), not {text!r}")
    if len(parts) == 1:
        n = int(parts[0])
        if n < 1:
            raise ValueError("--seeds needs at least one seed")
        return list(range(n))
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice ({text})")
    return seeds


def replicate_name(name: str, seed: int) -> str:
    return f"{name}-s{seed}"


def arm_name(run: str) -> str:
    """`uniform-s1` → `uniform`; a name without the suffix is its own arm."""
    m = REPLICATE_SUFFIX.match(run)
    return m.group("arm") if m else run


def _arm_config(config: Mapping[str, Any], seed_key: str) -> dict[str, Any]:
    """A run's configuration less what replicates may differ in: the seed, the name, and the replicate suffix of
    the runs it started from or was trained against (`--init sft/uniform-s1`, `--rm uniform-s1`: replicate 1 of
    the `sft/uniform` start and of the `uniform` reward model)."""
    out = {k: v for k, v in config.items() if k not in (seed_key, "name")}
    out["split_seed"] = config.get("split_seed", config.get(seed_key))  # recorded only where it differs from the seed
    for key in ("init", "ref", "rm"):  # starting runs, references and reward models taken by arm
        if isinstance(out.get(key), str):
            head, _, last = out[key].rpartition("/")
            out[key] = f"{head}/{arm_name(last)}" if head else arm_name(last)
    return out


def replicate_arms(configs: Mapping[str, Mapping[str, Any]], seed_key: str = "seed") -> dict[str, list[str]]:
    """`{arm: [runs, by seed]}` for runs (name → recorded configuration) that differ only in `seed_key` (and name,
    and which replicate of one start they began from) and share an arm name; a run alone, or differing in anything
    else, is an arm of one."""
    by_arm: dict[str, list[str]] = {}
    for run in sorted(configs):
        by_arm.setdefault(arm_name(run), []).append(run)
    out: dict[str, list[str]] = {}
    for arm, runs in by_arm.items():
        rest = [_arm_config(configs[r], seed_key) for r in runs]
        seeds = [configs[r].get(seed_key) for r in runs]
        if len(runs) > 1 and all(x == rest[0] for x in rest) and len(set(seeds)) == len(seeds):
            out[arm] = sorted(runs, key=lambda r: configs[r].get(seed_key))
        else:
            out.update({r: [r] for r in runs})
    return out


def pair_replicates(seeds_a: Sequence[int], seeds_b: Sequence[int]) -> list[tuple[int, int]]:
    """(seed of a, seed of b) pairs: the same seed in both; or every seed of a with b's one replicate."""
    if len(seeds_b) == 1:
        return [(s, seeds_b[0]) for s in seeds_a]
    if len(seeds_a) == 1:
        return [(seeds_a[0], s) for s in seeds_b]
    return [(s, s) for s in seeds_a if s in set(seeds_b)]


def _groups(sources: Sequence[str], quintiles: Sequence[int] | None) -> dict[str, Any]:
    src = np.asarray(sources, dtype=object)
    n = len(sources)
    out: dict[str, Any] = {"overall": np.ones(n, dtype=bool),
                           "by_source": {s: src == s for s in sorted(set(sources))}, "by_quintile": None}
    if quintiles is not None:
        q = np.asarray(quintiles)
        out["by_quintile"] = [q == k for k in range(5)]
    return out


def _figure(est: Any, *, test: bool) -> dict[str, Any]:
    out = est.to_json()
    if test and est.value is not None and "mdd80" not in out:
        out["mdd80"] = None if (m := mdd(est.se, est.df)) is None else round(m, 6)
    return out


def _by_group(matrix: np.ndarray, prefix_ids: Sequence[str], sources: Sequence[str],
              quintiles: Sequence[int] | None, rng: R.Range, *, test: bool) -> dict[str, Any]:
    pids = np.asarray(prefix_ids, dtype=object)

    def on(mask: np.ndarray) -> dict[str, Any]:
        if not mask.any():
            return {"value": None, "ci95": [None, None], "n": 0}
        est = R.across_seeds_mean(matrix[:, mask], rng, list(pids[mask]))
        return _figure(R.with_test(est, rng) if test else est, test=test)

    groups = _groups(sources, quintiles)
    out: dict[str, Any] = {
        "overall": on(groups["overall"]),
        "by_source": {s: on(m) for s, m in groups["by_source"].items()},
        "by_quintile": None if groups["by_quintile"] is None else [on(m) for m in groups["by_quintile"]],
        "n_seeds": int(matrix.shape[0]),
    }
    if test and out["by_quintile"] is not None:
        for q, adj in zip(out["by_quintile"], holm([q.get("p") for q in out["by_quintile"]])):
            if adj is not None:
                q["p_holm"] = float(f"{adj:.6g}")
    return out


def accuracy_across_seeds(correct: Mapping[int, np.ndarray], prefix_ids: Sequence[str], sources: Sequence[str],
                          quintiles: Sequence[int] | None = None) -> dict[str, Any]:
    """An arm's across-seed accuracy per group from `{seed: per-pair correctness}` on the same held-out pairs."""
    matrix = np.stack([np.asarray(correct[s], dtype=np.float64) for s in sorted(correct)])
    return _by_group(matrix, prefix_ids, sources, quintiles, ACCURACY, test=False)


def accuracy_difference_across_seeds(
    a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray], prefix_ids: Sequence[str], sources: Sequence[str],
    quintiles: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Δ accuracy = b − a across seeds, replicates paired by seed (`pair_replicates`) and pairs by position (the
    same held-out pairs), with p, `mdd80` and, per quintile, `p_holm`; `pairs` lists the seeds paired."""
    pairs = pair_replicates(sorted(a), sorted(b))
    diff = np.stack([np.asarray(b[sb], dtype=np.float64) - np.asarray(a[sa], dtype=np.float64) for sa, sb in pairs])
    out = _by_group(diff, prefix_ids, sources, quintiles, R.difference_range(ACCURACY), test=True)
    out["paired_seeds"] = [[sa, sb] for sa, sb in pairs]
    return out

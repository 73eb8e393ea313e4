"""Arm arguments of `kat eval`: `NAME` names all replicates `NAME-s<seed>` of an arm, `NAME-s1` one of them.

`expand_arms` turns each argument that names no run but has replicates into the replicates' own arguments (in
seed order), checking from their records that they differ only in the seed (`katcli.evaluation.arms`). The
evaluation then scores every replicate as an ordinary model and `arm_groups` says which results belong together.
This module knows run names and records; the statistics are `katcli.evaluation.arms`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.evaluation.arms import replicate_arms
from katcli.workspace import Workspace


@dataclass(frozen=True)
class Arm:
    """An argument naming an arm: its display name and its replicates' (seed, argument) in seed order."""

    name: str
    replicates: tuple[tuple[int, str], ...]


def _recorded_config(directory: Path) -> dict[str, Any]:
    metas = sorted(directory.glob("meta_*.json"))
    if not metas:
        return {}
    meta = json.loads(metas[-1].read_text(encoding="utf-8"))
    config = dict(meta.get("config") or {})
    held = meta.get("heldout")
    if isinstance(held, dict) and "seed" in held:  # the split it actually held out, whatever the flags were
        config["split_seed"] = held["seed"]
    return config


def _replicates_of(ws: Workspace, arg: str, stages: Sequence[str]) -> list[tuple[str, str, Path]]:
    """(stage, run name, directory) of the runs `ARG-s<seed>` of the first stage of `stages` that has any."""
    from katcli.pipeline.runs import ALIASES, RUN_ROOTS

    stage, sep, name = arg.partition("/")
    stage = ALIASES.get(stage, stage)
    wanted = [stage] if sep and stage in stages else ([] if sep else list(stages))
    name = name if sep else arg
    pattern = re.compile(rf"^{re.escape(name)}-s\d+$")
    for s in wanted:
        root = ws.abs(RUN_ROOTS[s])
        found = sorted(d for d in root.iterdir() if d.is_dir() and pattern.match(d.name)) if root.is_dir() else []
        if found:
            return [(s, d.name, d) for d in found]
    return []


def expand_arms(ws: Workspace, args: Sequence[str], stages: Sequence[str]) -> tuple[list[str], list[Arm]]:
    """(the arguments with every arm replaced by its replicates, the arms); an argument naming a run is kept."""
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.runs import lookup_run

    out: list[str] = []
    arms: list[Arm] = []
    for arg in args:
        if is_hf_ref(arg) or lookup_run(ws, arg, stages) is not None:
            out.append(arg)
            continue
        reps = _replicates_of(ws, arg, stages)
        if not reps:
            out.append(arg)  # the evaluation refuses it with its own message
            continue
        configs = {name: _recorded_config(d) for _, name, d in reps}
        grouped = replicate_arms(configs)
        if len(grouped) != 1:
            raise KatError(
                f"{arg}: its runs {', '.join(sorted(configs))} differ in more than --seed, so they are not "
                "replicates of one arm",
                hint="name each run (NAME-s<seed>), or retrain them with the same flags",
            )
        prefix = arg.partition("/")[0] + "/" if "/" in arg else ""
        ordered = next(iter(grouped.values()))
        seeds = {name: int(configs[name].get("seed", 0)) for name in ordered}
        arms.append(Arm(arg, tuple((seeds[n], f"{prefix}{n}" if prefix else n) for n in ordered)))
        out.extend(f"{prefix}{n}" if prefix else n for n in ordered)
    return out, arms


ONE_SEED_NOTE = ("one training seed per model: every interval covers held-out prompts only, not the seed (train "
                 "replicates with --seeds N and name the arm to get across-seed estimates)")


def rm_arm_results(arms: Sequence[Arm], models: Sequence[Any], *, prefix_ids: Sequence[str], sources: Sequence[str],
                   quintiles: Sequence[int] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`kat eval rm`'s `arms` (each arm's `replicates` and `across_seeds`) and `arm_comparisons` (every arm against
    the first, replicates paired by seed, pairs by position on the one held-out set) from its scored models."""
    import numpy as np

    from katcli.evaluation.arms import accuracy_across_seeds, accuracy_difference_across_seeds

    by_name = {m.name: m for m in models}
    out: list[dict[str, Any]] = []
    correct_of: list[dict[int, Any]] = []
    for arm in arms:
        reps = [(seed, by_name[arg]) for seed, arg in arm.replicates if arg in by_name]
        correct = {seed: np.asarray(m.report.margins) > 0 for seed, m in reps}
        correct_of.append(correct)
        entry: dict[str, Any] = {
            "name": arm.name,
            "replicates": [{"seed": seed, "run": m.name, **m.to_json()} for seed, m in reps],
        }
        if len(reps) > 1:
            entry["across_seeds"] = accuracy_across_seeds(correct, prefix_ids, sources, quintiles)
        out.append(entry)
    comparisons = [
        {"a": arms[0].name, "b": arm.name,
         **accuracy_difference_across_seeds(correct_of[0], correct_of[k], prefix_ids, sources, quintiles)}
        for k, arm in enumerate(arms[1:], 1)
    ]
    return out, comparisons

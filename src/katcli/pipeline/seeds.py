"""`--seeds`: one ordinary training run per seed, `NAME-s0`, `NAME-s1`, …: the replicates of one arm.

Each replicate is the same configuration with its own `--seed` and name (`katcli.evaluation.arms`), so it resumes,
shows in `kat status` and runs under torchrun as any run does; the held-out split stays with `--split-seed`, so all
replicates hold out the same prompts. A starting run (`--init`, GRPO's `--rm`) that names an *arm* (no run of that
name, but `NAME-s<seed>` exists) starts replicate i from the arm's replicate i; a reference naming one run starts
every replicate from it. This module knows run names and configs; not training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from katcli.errors import ConfigError
from katcli.evaluation.arms import replicate_name, seeds_spec
from katcli.workspace import Workspace

# Where a starting run of each kind is looked up (`katcli.pipeline.runs` stage names).
REF_STAGES = {"init": ("sft", "dpo", "grpo", "rm"), "rm": ("rm",), "ref": ("sft", "dpo", "grpo")}


def replicate_ref(ws: Workspace, ref: str | None, seed: int, stages: Sequence[str]) -> str | None:
    """`ref` itself when it names a run (or a directory, or hf:…); its replicate `ref-s<seed>` when only that
    exists (an arm); else `ref` unchanged, for the training stage to refuse with its own message."""
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.runs import lookup_run

    if ref is None or is_hf_ref(ref) or lookup_run(ws, ref, stages) is not None:
        return ref
    candidate = replicate_name(ref, seed)
    return candidate if lookup_run(ws, candidate, stages) is not None else ref


def replicate_configs(ws: Workspace, cfg: Any, seeds: str, *, refs: Sequence[str] = ("init",)) -> list[Any]:
    """One config per seed of `--seeds` (`0,1,2` or `3`): seed, name `NAME-s<seed>`, and starting runs by arm."""
    try:
        wanted = seeds_spec(seeds)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="e.g. --seeds 3 (seeds 0, 1, 2) or --seeds 0,4,7") from None
    out = []
    for s in wanted:
        moved = {k: replicate_ref(ws, getattr(cfg, k), s, REF_STAGES[k]) for k in refs if hasattr(cfg, k)}
        out.append(replace(cfg, seed=s, name=replicate_name(cfg.run_name, s), seeds=None, **moved))
    return out

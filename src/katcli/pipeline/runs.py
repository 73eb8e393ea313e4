"""The one rule for arguments that name a model: a run of this workspace first, then a directory.

`NAME` is looked up among the workspace's runs of the stages an argument accepts (`models/NAME`,
`sft_checkpoints/NAME`, `rm_checkpoints/NAME`, …); `STAGE/NAME` (`sft/uniform`, `dpo/density`, `models/d20`) picks
one stage when a name exists in several. Anything else — or a name no run has — is taken as a path to a checkpoint
directory. `--init`, `--ref`, `--rm` and the model arguments of `kat eval` all resolve this way.

This module knows the workspace layout of runs; it does not read checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.workspace import Workspace
from katcli.workspace import paths as P

# stage key → the directory holding its runs
RUN_ROOTS = {
    "model": P.MODELS_DIR,
    "sft": P.SFT_DIR,
    "dpo": P.DPO_DIR,
    "grpo": P.GRPO_DIR,
    "rm": P.RM_DIR,
    "kto": P.KTO_DIR,  # last: the stage lists in messages keep their order
    "ppo": P.PPO_DIR,
}
POLICY_STAGES = ("sft", "dpo", "grpo", "kto", "ppo", "model")
ALIASES = {"models": "model"}  # `models/NAME` reads as naturally as `model/NAME`
_ALIASES = ALIASES


@dataclass(frozen=True)
class RunRef:
    """A resolved model argument: the stage it is a run of (None for a plain directory), its name, its directory."""

    stage: str | None
    name: str
    directory: Path


def lookup_run(ws: Workspace, ref: str, stages: Sequence[str]) -> RunRef | list[RunRef] | None:
    """The run or directory `ref` names; a list of the candidates when a bare name is ambiguous; None if nothing.

    Callers word their own errors (what kind of model they wanted); the rule itself lives only here.
    """
    stage, sep, name = ref.partition("/")
    stage = _ALIASES.get(stage, stage)
    if sep and stage in stages and name and "/" not in name:
        candidate = ws.abs(f"{RUN_ROOTS[stage]}/{name}")
        if candidate.is_dir():
            return RunRef(stage, name, candidate)
    if not sep and "\\" not in ref and ref not in ("", ".", ".."):
        found = [RunRef(s, ref, ws.abs(f"{RUN_ROOTS[s]}/{ref}")) for s in stages if ws.abs(f"{RUN_ROOTS[s]}/{ref}").is_dir()]
        if len(found) == 1:
            return found[0]
        if found:
            return found
    path = Path(ref).expanduser()
    if path.is_dir():
        return RunRef(None, path.resolve().name, path.resolve())
    return None


def other_stage_run(ws: Workspace, ref: str, stages: Sequence[str]) -> RunRef | None:
    """The one run of a stage outside `stages` that `ref` names, for an error that says what it is instead."""
    found = lookup_run(ws, ref, [s for s in RUN_ROOTS if s not in stages])
    return found if isinstance(found, RunRef) and found.stage is not None else None


def resolve_run(ws: Workspace, ref: str, stages: Sequence[str], *, flag: str) -> tuple[str, Path]:
    """(display name, directory) for a run reference; `flag` names the argument in errors."""
    found = lookup_run(ws, ref, stages)
    if isinstance(found, list):
        raise KatError(
            f"{flag} {ref}: several runs have that name ({', '.join(f'{r.stage}/{ref}' for r in found)})",
            hint=f"name one as STAGE/NAME, e.g. {found[0].stage}/{ref}",
        )
    if found is None:
        where = ", ".join(f"{RUN_ROOTS[s]}/" for s in stages)
        other = other_stage_run(ws, ref, stages)
        if other is not None:  # a run the argument does not take: say which, not "no such run"
            raise KatError(
                f"{flag} {ref}: that is a run of {RUN_ROOTS[other.stage]}/, and {flag} takes a run of "
                f"{' or '.join(f'{RUN_ROOTS[s]}/' for s in stages)}",
                hint=f"pass a run name from {where} (or STAGE/NAME), or a directory holding model_<step>.pt + "
                "meta_<step>.json",
            )
        raise KatError(
            f"{flag} {ref}: no such run or checkpoint directory",
            hint=f"pass a run name from {where} (or STAGE/NAME), or a directory holding model_<step>.pt + "
            "meta_<step>.json",
        )
    return (ref if found.stage is not None else found.name), found.directory


def list_runs(ws: Workspace, stage: str) -> list[str]:
    """Names of the runs of one stage that exist on disk, sorted."""
    root = ws.abs(RUN_ROOTS[stage])
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def recorded_path(ws: Workspace, path: Path) -> str:
    """How metas record a model directory: relative to the workspace when inside it (so the same run in another
    workspace writes the same bytes), absolute otherwise."""
    try:
        return ws.rel(path)
    except KatError:
        return str(Path(path).resolve())


def default_policy_init(ws: Workspace, cfg: Any) -> Any:
    """A policy objective's config (`kat train dpo|grpo`) with `--init` defaulted to the workspace's SFT run when
    there is exactly one; without one, or with several, the candidates are named. `--depth` (a fresh toy model)
    and an explicit `--init` are kept."""
    if cfg.init is not None or cfg.depth is not None:
        return cfg
    sft = list_runs(ws, "sft")
    if len(sft) == 1:
        return replace(cfg, init=f"sft/{sft[0]}")
    candidates = [f"sft/{n}" for n in sft] + [f"model/{n}" for n in list_runs(ws, "model")]
    if not candidates:
        raise ConfigError(
            "--init is needed: the workspace has no SFT run or imported model to start the policy from",
            hint="run `kat train sft` first (or `kat import nanochat`), or pass --init DIR",
        )
    raise ConfigError(
        f"--init is needed: the workspace has {len(candidates)} policies to start from ({', '.join(candidates)})",
        hint=f"pick one, e.g. --init {candidates[0]}",
    )

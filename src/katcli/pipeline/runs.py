"""The one rule for arguments that name a model: a run of this workspace first, then a directory.

`NAME` is looked up among the workspace's runs of the stages an argument accepts (`models/NAME`,
`sft_checkpoints/NAME`, `rm_checkpoints/NAME`, …); `STAGE/NAME` (`sft/uniform`, `dpo/density`, `model/d20`) picks
one stage when a name exists in several. Anything else — or a name no run has — is taken as a path to a checkpoint
directory. `--init`, `--ref`, `--rm` and the model arguments of `kat eval` all resolve this way.

This module knows the workspace layout of runs; it does not read checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from katcli.errors import KatError
from katcli.workspace import Workspace
from katcli.workspace import paths as P

# stage key → the directory holding its runs
RUN_ROOTS = {
    "model": P.MODELS_DIR,
    "sft": P.SFT_DIR,
    "dpo": P.DPO_DIR,
    "grpo": P.GRPO_DIR,
    "rm": P.RM_DIR,
}
POLICY_STAGES = ("sft", "dpo", "grpo", "model")


def resolve_run(ws: Workspace, ref: str, stages: Sequence[str], *, flag: str) -> tuple[str, Path]:
    """(display name, directory) for a run reference; `flag` names the argument in errors."""
    stage, sep, name = ref.partition("/")
    if sep and stage in stages and name and "/" not in name:
        candidate = ws.abs(f"{RUN_ROOTS[stage]}/{name}")
        if candidate.is_dir():
            return ref, candidate
    if not sep and ref not in (".", ".."):
        found = [(s, ws.abs(f"{RUN_ROOTS[s]}/{ref}")) for s in stages if ws.abs(f"{RUN_ROOTS[s]}/{ref}").is_dir()]
        if len(found) == 1:
            return ref, found[0][1]
        if len(found) > 1:
            raise KatError(
                f"{flag} {ref}: several runs have that name ({', '.join(f'{s}/{ref}' for s, _ in found)})",
                hint=f"name one as STAGE/NAME, e.g. {found[0][0]}/{ref}",
            )
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve().name, path.resolve()
    where = ", ".join(f"{RUN_ROOTS[s]}/" for s in stages)
    raise KatError(
        f"{flag} {ref}: no such run or checkpoint directory",
        hint=f"pass a run name from {where} (or STAGE/NAME), or a directory holding model_<step>.pt + meta_<step>.json",
    )


def list_runs(ws: Workspace, stage: str) -> list[str]:
    """Names of the runs of one stage that exist on disk, sorted."""
    root = ws.abs(RUN_ROOTS[stage])
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

"""Which policy a POLICY argument names: a workspace run first, then a directory path.

A run name is looked up under `sft_checkpoints/`, `dpo_checkpoints/`, `grpo_checkpoints/` and `models/` (imports);
when several hold it, `KIND/NAME` (`dpo/density`, `models/nanochat-sft-d20`) chooses, and a bare ambiguous name is
refused with both spellings in the hint. Only when no run matches is the argument taken as a path (so `./density`
always means the directory). Each policy gets a display label (the argument as typed, `KIND/NAME` or `#2` when two
would read alike) and a flat run name `<kind>-<name>` for the manifest and `eval/policy/`.

This module knows the workspace layout of policy runs; not what is inside a checkpoint (`katcli.evaluation.policy`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from katcli.errors import KatError
from katcli.workspace import Workspace
from katcli.workspace import paths as P

POLICY_DIRS = (("sft", P.SFT_DIR), ("dpo", P.DPO_DIR), ("grpo", P.GRPO_DIR), ("models", P.MODELS_DIR))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PolicyRef:
    label: str  # what the tables call it
    kind: str  # sft | dpo | grpo | models | dir
    name: str
    directory: Path

    @property
    def run(self) -> str:
        """The manifest run name and the folder under eval/policy/."""
        return _UNSAFE.sub("_", f"{self.kind}-{self.name}")


def resolve_policy(ws: Workspace, arg: str) -> PolicyRef:
    """A run name under the workspace's policy directories (KIND/NAME to choose), else a directory path."""
    kind, sep, rest = arg.partition("/")
    dirs = dict(POLICY_DIRS)
    if sep and kind in dirs and rest and "/" not in rest and ws.abs(f"{dirs[kind]}/{rest}").is_dir():
        return PolicyRef(arg, kind, rest, ws.abs(f"{dirs[kind]}/{rest}"))
    if not sep and "\\" not in arg and arg not in ("", ".", ".."):
        found = [(k, d) for k, d in POLICY_DIRS if ws.abs(f"{d}/{arg}").is_dir()]
        if len(found) > 1:
            raise KatError(
                f"policy name {arg!r} is ambiguous: it is in " + ", ".join(f"{d}/" for _, d in found),
                hint="write it as KIND/NAME: " + " or ".join(f"{k}/{arg}" for k, _ in found),
            )
        if found:
            k, d = found[0]
            return PolicyRef(arg, k, arg, ws.abs(f"{d}/{arg}"))
    path = Path(arg).expanduser()
    if path.is_dir():
        return PolicyRef(path.resolve().name, "dir", path.resolve().name, path.resolve())
    raise KatError(
        f"no policy {arg!r}",
        hint="pass a run name from sft_checkpoints/, dpo_checkpoints/, grpo_checkpoints/ or models/ "
        "(KIND/NAME, e.g. dpo/density, when several hold it), or a checkpoint directory",
    )


def unique_labels(refs: list[PolicyRef]) -> list[PolicyRef]:
    seen: dict[str, int] = {}
    out = []
    for r in refs:
        label = r.label if r.label not in seen else f"{r.kind}/{r.name}"
        if label in seen:
            label = f"{label}#{seen[label] + 1}"
        seen[label] = seen.get(label, 0) + 1
        seen.setdefault(r.label, 1)
        out.append(PolicyRef(label, r.kind, r.name, r.directory))
    return out

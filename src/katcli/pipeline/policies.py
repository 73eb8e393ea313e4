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
from katcli.pipeline.runs import POLICY_STAGES, RUN_ROOTS, lookup_run
from katcli.workspace import Workspace

_KIND = {"sft": "sft", "dpo": "dpo", "grpo": "grpo", "kto": "kto", "ppo": "ppo", "model": "models"}  # stage → the kind in labels and run names
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PolicyRef:
    label: str  # what the tables call it
    kind: str  # sft | dpo | grpo | models | dir | hf
    name: str
    directory: Path

    @property
    def run(self) -> str:
        """The manifest run name and the folder under eval/policy/."""
        return _UNSAFE.sub("_", f"{self.kind}-{self.name}")


def resolve_policy(ws: Workspace, arg: str, *, trust_remote_code: bool = False) -> PolicyRef:
    """A run name under the workspace's policy directories (KIND/NAME to choose), else a directory path
    (`katcli.pipeline.runs`' one rule; this function only words the errors and names the result); `hf:NAME|DIR` is
    a Hugging Face causal LM as it is (e.g. the base model before training, `katcli.pipeline.hf_source`)."""
    from katcli.model.hf import PREFIX, is_hf_ref

    if is_hf_ref(arg):
        from katcli.model.hf import check_model_dir
        from katcli.pipeline.hf_source import resolve

        d = resolve(arg, trust_remote_code=trust_remote_code, flag="POLICY")[0]
        check_model_dir(d, trust_remote_code=trust_remote_code)  # safetensors only, remote code only with the flag
        return PolicyRef(arg, "hf", arg[len(PREFIX):], d)
    found = lookup_run(ws, arg, POLICY_STAGES)
    if isinstance(found, list):
        raise KatError(
            f"policy name {arg!r} is ambiguous: it is in " + ", ".join(f"{RUN_ROOTS[r.stage]}/" for r in found),
            hint="write it as KIND/NAME: " + " or ".join(f"{_KIND[r.stage]}/{arg}" for r in found),
        )
    if found is None:
        raise KatError(
            f"no policy {arg!r}",
            hint="pass a run name from sft_checkpoints/, dpo_checkpoints/, grpo_checkpoints/ or models/ "
            "(KIND/NAME, e.g. dpo/density, when several hold it), or a checkpoint directory",
        )
    if found.stage is None:
        return PolicyRef(found.name, "dir", found.name, found.directory)
    return PolicyRef(arg, _KIND[found.stage], found.name, found.directory)


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

"""The frozen reference policy of DPO and GRPO (`--ref`): which checkpoint, and whether it fits the policy.

A reference must be a policy checkpoint (a kat policy run or an imported nanochat model, never a reward model), with
the policy's tokenizer and vocabulary: both objectives compare the two models' log-probs token by token (DPO's
log-ratios, GRPO's KL term). `policy_checkpoint` checks what a directory holds; `resolve_reference` resolves a
`--ref` argument by the one run-name-or-path rule, checks it against the policy and records its files as inputs.
Loading its weights, or caching its log-probs, is the calling stage's business.

This module knows checkpoints' metas and the workspace's runs; not objectives or losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError

POLICY_KINDS = ("kat-policy", "nanochat")
POLICY_HINT = (
    "pass a policy: an SFT run (`kat train sft`), an imported model (`kat import nanochat`) or a directory holding "
    "one"
)


@dataclass(frozen=True)
class ReferenceCheckpoint:
    name: str  # as the user named it (or the directory's name)
    directory: Path
    step: int
    meta: dict[str, Any]
    files: dict[str, Path]  # model, meta, optim paths of that step


def policy_checkpoint(directory: Path, flag: str) -> tuple[int, dict[str, Any], Path]:
    """(step, meta, meta file) of a policy checkpoint; a reward model or a non-checkpoint is refused."""
    from katcli.model.checkpoint import checkpoint_paths, find_last_step, read_meta
    from katcli.train.run_dir import RM_KIND

    try:
        step = find_last_step(directory)
    except KatError as exc:
        raise KatError(f"{flag}: {exc.message}", file=exc.file, hint=POLICY_HINT) from None
    meta_path = checkpoint_paths(directory, step)["meta"]
    meta = read_meta(meta_path)
    if meta.get("kind") == RM_KIND:
        raise KatError(
            f"{flag} is a reward model, not a policy", file=str(meta_path),
            hint=f"{POLICY_HINT}; a reward model scores replies but cannot generate them",
        )
    if meta.get("kind") not in POLICY_KINDS or "model_config" not in meta:
        raise KatError(f"{flag} is not a policy checkpoint", file=str(meta_path), hint=POLICY_HINT)
    return step, meta, meta_path


def resolve_reference(prep: Any, value: str, *, flag: str = "--ref") -> ReferenceCheckpoint:
    """The `--ref` checkpoint, refused unless it is a policy with the policy's tokenizer and vocabulary."""
    from katcli.model.checkpoint import checkpoint_paths
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run
    from katcli.pipeline.training import record_input

    name, directory = resolve_run(prep.ws, value, (*POLICY_STAGES, "rm"), flag=flag)
    step, meta, meta_path = policy_checkpoint(directory, flag)
    tok_sha = prep.tokenizer.sha256()
    recorded = meta.get("tokenizer_sha256")
    if recorded not in (None, tok_sha):
        raise KatError(
            f"{flag} was trained with another tokenizer (sha256 {recorded[:12]}…) than the policy ({tok_sha[:12]}…)",
            file=str(meta_path),
            hint=f"the reference's log-probs are compared token by token with the policy's: pass a {flag} that "
            "shares the policy's tokenizer (e.g. the --init model, the default)",
        )
    vocab = int(meta["model_config"].get("vocab_size", -1))
    if vocab != prep.gpt.config.vocab_size:
        raise KatError(
            f"{flag} has {vocab} token ids but the policy has {prep.gpt.config.vocab_size}",
            file=str(meta_path),
            hint=f"the reference's log-probs are compared token by token with the policy's: pass a {flag} with the "
            "policy's vocabulary (e.g. the --init model, the default)",
        )
    files = checkpoint_paths(directory, step)
    for key in ("model", "meta"):
        record_input(prep.ws, prep.run, files[key])
    return ReferenceCheckpoint(name, directory, step, meta, files)

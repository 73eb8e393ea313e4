"""`--resume` of a training run: what may differ from the interrupted run, what may not, and what a Ctrl-C leaves.

A resumed run continues exactly (model, optimizer, sample stream, RNG) only with the flags and inputs it was trained
with; `check_same_flags` and `check_same_inputs` refuse anything else naming the flag or file, `RESUME_FREE` lists
what changes where the run runs, not what it computes. This module knows checkpoint metas and flags; not how a run
is trained or recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.pipeline.train_config import TrainConfig

# Flags that may change between an interrupted run and its --resume without changing what is computed.
RESUME_FREE = {"eval_every", "save_every", "device", "threads", "fsdp"}


def interrupted_message(out_dir: Path, out_rel: str) -> str:
    """What survives a Ctrl-C: the latest checkpoint, which `--resume` continues exactly."""
    from katcli.model.checkpoint import find_last_step
    from katcli.train.run_dir import has_checkpoint

    if not has_checkpoint(out_dir):
        return f"interrupted before the first checkpoint; nothing was recorded and {out_rel}/ holds no checkpoint"
    step = find_last_step(out_dir)
    return (
        f"interrupted; nothing was recorded, but {out_rel}/ holds the checkpoint of step {step}: "
        "re-run the same command with --resume to continue exactly from there"
    )


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_same_flags(cfg: TrainConfig, meta: Any, rel: str) -> None:
    """Refuse to resume a checkpoint (`RunMeta`) trained with other flags: it would not continue the same run."""
    saved = meta.config
    now = cfg.params()
    for key in sorted(set(saved) | set(now)):
        if key in RESUME_FREE or saved.get(key) == now.get(key):
            continue
        flag = cfg.BATCH_FLAG if key == "batch_size" else _flag(key)
        start_over = "or drop --resume to start over"
        if key == "density_aware":
            was = "with" if saved.get(key) else "without"
            raise ConfigError(f"{rel}/ was trained {was} --density-aware",
                              hint=f"resume {was} --density-aware, as it was trained ({start_over})")
        value = saved.get(key)
        simple = isinstance(value, (int, float, str)) and not isinstance(value, bool)
        raise ConfigError(
            f"{flag} is {now.get(key)!r} but {rel}/ was trained with {value!r}",
            hint=(f"resume with {flag} {value}, as it was trained ({start_over})" if simple
                  else f"resume with the flags it was trained with ({start_over})"),
        )


def check_same_inputs(meta: Any, shas: dict[str, str | None], tok_sha: str, rel: str) -> None:
    """Refuse to resume a checkpoint trained on other inputs: the sample stream would differ."""
    for path, sha in shas.items():
        if meta.trained_on(path) != sha:
            raise KatError(
                f"{path} changed since {rel}/ was checkpointed, so a resumed run would not continue the same run",
                hint="drop --resume to start over on the new inputs",
            )
    if meta.tokenizer_sha256 != tok_sha:
        raise KatError(f"the tokenizer changed since {rel}/ was checkpointed", hint="drop --resume to start over")

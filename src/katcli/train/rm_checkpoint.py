"""Reward-model checkpoint directories: what they hold, how they are loaded for eval, resume and `--init`.

A run directory (`rm_checkpoints/<name>/`) holds, for the latest saved step only, nanochat's trio
`model_{step:06d}.pt` (GPT keys + `reward_head.weight`), `meta_{step:06d}.json` and `optim_{step:06d}.pt`
(optimizer state, the sample stream's position and the torch RNG state: everything `--resume` needs), plus
`tokenizer.json` (so the directory is self-contained) and `metrics.jsonl`. Older steps are removed once a newer one
is safely on disk. The files themselves are written atomically by `katcli.model.checkpoint`.

This module knows file names and how to rebuild models from them; not the workspace, manifest or training loop.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from katcli.errors import KatError
from katcli.model.checkpoint import (
    Checkpoint,
    checkpoint_paths,
    find_last_step,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from katcli.model.gpt import GPT, GPTConfig
from katcli.train.reward_model import HEAD_KEY, RewardModel, split_state

KIND = "kat-reward-model"
METRICS_FILE = "metrics.jsonl"
TOKENIZER_FILE = "tokenizer.json"
_STEP_FILE = re.compile(r"^(model|meta|optim)_(\d+)\.(pt|json)$")


def has_checkpoint(directory: Path) -> bool:
    return directory.is_dir() and any(_STEP_FILE.match(p.name) for p in directory.iterdir())


def step_files(directory: Path, step: int) -> list[Path]:
    return [p for p in checkpoint_paths(directory, step).values() if p.is_file()]


def save_rm_checkpoint(
    directory: Path, step: int, rm: RewardModel, meta: dict[str, Any], optim_state: dict[str, Any]
) -> list[Path]:
    """Write one step atomically, then delete every other step's files; returns the files of this step."""
    save_checkpoint(directory, step, rm.checkpoint_state(), meta, optim_state)
    keep = {p.name for p in checkpoint_paths(directory, step).values()}
    for p in directory.iterdir():
        if _STEP_FILE.match(p.name) and p.name not in keep:
            p.unlink(missing_ok=True)
    return step_files(directory, step)


def clear_run(directory: Path) -> None:
    """Remove a previous run's checkpoints and logs before a fresh (non-resumed) run writes its own."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        if _STEP_FILE.match(p.name) or p.name in (METRICS_FILE, TOKENIZER_FILE):
            p.unlink(missing_ok=True)


def read_rm_meta(directory: Path, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """The step and meta of a reward-model checkpoint (the latest step by default)."""
    ckpt_step = find_last_step(directory) if step is None else step
    meta = read_meta(checkpoint_paths(directory, ckpt_step)["meta"])
    if meta.get("kind") != KIND:
        raise KatError(
            "not a kat reward-model checkpoint",
            file=str(checkpoint_paths(directory, ckpt_step)["meta"]),
            hint="pass a directory written by `kat train rm` (e.g. rm_checkpoints/uniform)",
        )
    return ckpt_step, meta


def load_rm(
    directory: Path, step: int | None = None, *, device: str | torch.device = "cpu", load_optim: bool = False
) -> tuple[RewardModel, Checkpoint]:
    """Rebuild the reward model of a checkpoint directory, weights loaded strictly."""
    ckpt_step, meta = read_rm_meta(directory, step)
    ckpt = load_checkpoint(directory, ckpt_step, device="cpu", load_optim=load_optim)
    config = GPTConfig.from_dict(meta["model_config"])
    body, head = split_state(ckpt.model_state)
    source = str(checkpoint_paths(directory, ckpt_step)["model"])
    if head is None:
        raise KatError(f"checkpoint has no {HEAD_KEY}", file=source, hint="it is not a reward model")
    rm = RewardModel(GPT.from_state_dict(config, {k: v.float() for k, v in body.items()}, source=source))
    with torch.no_grad():
        rm.head.weight.copy_(head.float())
    return rm.to(device), ckpt


def load_init_gpt(directory: Path, *, step: int | None = None) -> tuple[GPT, Checkpoint]:
    """The GPT of a kat / imported-nanochat / reward-model checkpoint, for `--init` (a reward head is dropped)."""
    ckpt = load_checkpoint(directory, step, device="cpu")
    meta_path = checkpoint_paths(directory, ckpt.step)["meta"]
    if "model_config" not in ckpt.meta:
        raise KatError("checkpoint meta has no model_config", file=str(meta_path), hint="--init needs a GPT checkpoint")
    config = GPTConfig.from_dict(ckpt.meta["model_config"])
    body, _ = split_state(ckpt.model_state)
    source = str(checkpoint_paths(directory, ckpt.step)["model"])
    return GPT.from_state_dict(config, {k: v.float() for k, v in body.items()}, source=source), ckpt

"""Reward-model checkpoints: reading their metas and rebuilding the model (GPT + reward head) from them.

The directory layout, saving and pruning are every objective's (`katcli.train.run_dir`); this module only adds what
is particular to reward models: the `kat-reward-model` kind and the head. It knows nothing about the workspace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from katcli.errors import KatError
from katcli.model.checkpoint import Checkpoint, checkpoint_paths, load_checkpoint
from katcli.model.gpt import GPT, GPTConfig
from katcli.train.reward_model import HEAD_KEY, RewardModel, split_state
from katcli.model.hf import is_hf_dir
from katcli.train.run_dir import RM_KIND, load_hf_reward_model, read_run_meta

KIND = RM_KIND
_HINT = "pass a directory written by `kat train rm` (e.g. rm_checkpoints/uniform)"


def read_rm_meta(directory: Path, step: int | None = None) -> tuple[int, dict[str, Any]]:
    """The step and meta of a reward-model checkpoint (the latest step by default)."""
    return read_run_meta(directory, (KIND,), step=step, hint=_HINT)


def rm_lengths(meta: dict[str, Any]) -> tuple[int, int]:
    """(max_len, max_response_len) a reward model was trained with: what scoring with it must use too."""
    cfg = meta.get("config", {})
    max_len = int(cfg.get("max_len", 512))
    return max_len, int(cfg.get("max_response_len") or max_len // 2)


def load_rm(
    directory: Path, step: int | None = None, *, device: str | torch.device = "cpu", load_optim: bool = False
) -> tuple[RewardModel, Checkpoint]:
    """Rebuild the reward model of a checkpoint directory, weights loaded strictly."""
    ckpt_step, meta = read_rm_meta(directory, step)
    ckpt = load_checkpoint(directory, ckpt_step, device="cpu", load_optim=load_optim)
    if is_hf_dir(directory):
        return load_hf_reward_model(directory, ckpt.model_state).to(device), ckpt
    config = GPTConfig.from_dict(meta["model_config"])
    body, head = split_state(ckpt.model_state)
    source = str(checkpoint_paths(directory, ckpt_step)["model"])
    if head is None:
        raise KatError(f"checkpoint has no {HEAD_KEY}", file=source, hint="it is not a reward model")
    rm = RewardModel(GPT.from_state_dict(config, {k: v.float() for k, v in body.items()}, source=source))
    with torch.no_grad():
        rm.head.weight.copy_(head.float())
    return rm.to(device), ckpt

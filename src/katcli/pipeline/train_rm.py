"""The `rm` stage: train a Bradley–Terry reward model, uniform or density-aware, into `rm_checkpoints/<name>/`.

Everything every training stage shares — inputs and their checks, `--init`/`--depth`, the held-out split, the
sampler, resume, ranks and records — is `katcli.pipeline.training`. This module adds what is particular to reward
models: the `--reward-centering` flag, encoding each pair's chosen and rejected sequences, and the
`RewardModelObjective` (`katcli.train.objectives.rm`). A uniform run still reports held-out accuracy per density
quintile when fresh density weights exist. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

from typing import Any

from katcli.pipeline.train_config import TrainRMConfig
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "rm"
TrainRMResult = TrainResult


def tiny_config(*, density_aware: bool = False, **overrides: Any) -> TrainRMConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (quickstart, smoke tests)."""
    base: dict[str, Any] = dict(
        density_aware=density_aware, depth=1, max_steps=40, batch_size=16, max_len=256, lr=2e-3,
        val_ratio=0.2, eval_every=0, save_every=0, device="cpu", threads=1,
    )
    base.update(overrides)
    return TrainRMConfig(**base)


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.rm import RewardModelObjective
    from katcli.train.reward_model import RewardModel
    from katcli.train.sequences import encode_pairs

    cfg: TrainRMConfig = prep.cfg
    enc = encode_pairs(
        prep.tokenizer, [(p.messages, p.chosen, p.rejected) for p in prep.pairs], ids=[p.id for p in prep.pairs],
        max_len=cfg.max_len, max_response_len=cfg.resolved_max_response_len, progress=prep.progress,
    )
    if enc.prefix_trimmed or enc.responses_cut:
        prep.notes.append(
            f"{enc.prefix_trimmed:,} pairs had their prefix trimmed from the left "
            f"({enc.final_turn_cut:,} into the final user turn) and {enc.responses_cut:,} responses were cut "
            f"to fit --max-len {cfg.max_len}"
        )
    rm = prep.gpt if getattr(prep.gpt, "is_reward_model", False) else RewardModel(prep.gpt)  # HF: already one
    objective = RewardModelObjective(
        rm, enc, pad_id=prep.tokenizer.pad_token_id, center_coef=cfg.reward_centering,
        heldout=prep.heldout(), eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist,
        progress=prep.progress,
    )
    train_index = np.asarray(prep.split.train, dtype=np.int64)
    return Built(objective, enc.pair_lengths[train_index], meta={"sequences": enc.stats})


RM_STAGE = TrainingStage(stage=STAGE, run_root=P.RM_DIR, kind="kat-reward-model", build=_build, what="reward models")


def run_train_rm(
    ws: Workspace,
    cfg: TrainRMConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one reward model and record it as `rm/<name>`; works alone or under torchrun."""
    return run_training(ws, cfg, RM_STAGE, progress=progress, on_step=on_step)

"""The `rm` stage: train a Bradley–Terry reward model, uniform or density-aware, into `rm_checkpoints/<name>/`.

Everything every training stage shares — inputs and their checks, `--init`/`--depth`, the held-out split, the
sampler, resume, ranks and records — is `katcli.pipeline.training`. This module adds what is particular to reward
models: the `--reward-centering` flag, encoding each pair's chosen and rejected sequences, and the
`RewardModelObjective` (`katcli.train.objectives.rm`). A uniform run still reports held-out accuracy per density
quintile when fresh density weights exist. It knows nothing about Typer or Rich.
"""

from __future__ import annotations

from typing import Any

from katcli.model.run_meta import RM_KIND
from katcli.pipeline.train_config import TrainRMConfig, tiny
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "rm"
TrainRMResult = TrainResult


def tiny_config(*, density_aware: bool = False, **overrides: Any) -> TrainRMConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (quickstart, smoke tests)."""
    return tiny(TrainRMConfig, {"density_aware": density_aware, "depth": 1, "lr": 2e-3}, overrides)


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.rm import RewardModelObjective
    from katcli.train.reward_model import RewardModel

    cfg: TrainRMConfig = prep.cfg
    enc = prep.encode_pairs()
    rm = prep.model if getattr(prep.model, "is_reward_model", False) else RewardModel(prep.model)  # HF: already one
    objective = RewardModelObjective(
        rm, enc, pad_id=prep.tokenizer.pad_token_id, center_coef=cfg.reward_centering,
        heldout=prep.heldout(), eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist,
        progress=prep.progress,
    )
    train_index = np.asarray(prep.split.train, dtype=np.int64)
    return Built(objective, enc.pair_lengths[train_index], meta={"sequences": enc.stats})


RM_STAGE = TrainingStage(stage=STAGE, run_root=P.RM_DIR, kind=RM_KIND, build=_build, what="reward models")


def run_train_rm(
    ws: Workspace,
    cfg: TrainRMConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one reward model and record it as `rm/<name>`; works alone or under torchrun."""
    return run_training(ws, cfg, RM_STAGE, progress=progress, on_step=on_step)

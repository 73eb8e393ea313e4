"""The `sft` stage: supervised fine-tuning on the chosen replies, uniform or density-aware, into `sft_checkpoints/`.

"SFT on preferred completions" (the DPO paper's recipe for a starting policy): each training pair contributes its
prompt and chosen reply; the loss is the mean NLL of the reply tokens (`katcli.train.objectives.sft`). The held-out
prompts are the same as `kat train rm`'s for the same `--seed` and `--val-ratio`, and evaluation reports held-out
reply NLL and perplexity overall, per source and per density quintile. The result is a plain GPT checkpoint (kind
`kat-policy`), the format `kat import nanochat` writes, so it is an `--init` for every later stage.

Everything else is `katcli.pipeline.training`. This module knows nothing about Typer or Rich.
"""

from __future__ import annotations

from typing import Any

from katcli.model.run_meta import POLICY_KIND
from katcli.pipeline.train_config import TrainSFTConfig, tiny
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "sft"


def tiny_sft_config(*, density_aware: bool = False, **overrides: Any) -> TrainSFTConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (quickstart, smoke tests)."""
    return tiny(TrainSFTConfig, {"density_aware": density_aware, "depth": 1, "lr": 3e-3}, overrides)


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.sft import SFTObjective

    enc = prep.encode_chosen()
    objective = SFTObjective(
        prep.model, enc, pad_id=prep.tokenizer.pad_token_id, heldout=prep.heldout(),
        eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist, progress=prep.progress,
    )
    train_index = np.asarray(prep.split.train, dtype=np.int64)
    return Built(objective, enc.row_lengths[train_index], meta={"objective": "sft", "sequences": enc.stats})


SFT_STAGE = TrainingStage(stage=STAGE, run_root=P.SFT_DIR, kind=POLICY_KIND, build=_build, what="policies")


def run_train_sft(
    ws: Workspace,
    cfg: TrainSFTConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one SFT policy and record it as `sft/<name>`; works alone or under torchrun."""
    return run_training(ws, cfg, SFT_STAGE, progress=progress, on_step=on_step)

"""The `dpo` stage: direct preference optimisation of a policy against a frozen reference, into `dpo_checkpoints/`.

The policy starts from `--init` (an `sft_checkpoints/` run, an imported model under `models/`, or a directory; by
default the workspace's only SFT run) and the reference is `--ref` or that same starting model, frozen. Before the
first step the reference's summed reply log-probs of every pair (training and held-out) are computed once, with a
progress bar, and cached beside the run (`ref_logps.npy` + `ref_logps.json`, see `katcli.train.ref_cache`): the
reference model is then freed, so training holds one model. A `--resume`, a re-run, or another run whose cache
key matches (same reference weights, pairs, tokenizer, `--max-len`, `--max-response-len`) reuses the numbers; a
cache whose key differs is recomputed, and one that was modified after kat wrote it is an error.

Refused before anything slow: an `--init` or `--ref` that is a reward model, a `--ref` that is no checkpoint, and a
reference whose tokenizer or vocabulary differs from the policy's. Everything else — inputs, the held-out split,
the sampler and its ESS, resume, ranks, records — is `katcli.pipeline.training`; the loss and evaluation are
`katcli.train.objectives.dpo`. The output is a plain GPT policy checkpoint, an `--init` for any later stage.
The reference model and its cached log-probs are `katcli.pipeline.reference`'s. The reference-free losses
(`--loss simpo|orpo`) load no reference and compute no cache: the meta records `"reference": null`.
This module knows nothing about Typer or Rich.
"""

from __future__ import annotations

from typing import Any

from katcli.model.run_meta import POLICY_KIND
from katcli.pipeline.reference import policy_checkpoint, reference_logps, resolve_dpo_reference
from katcli.pipeline.runs import default_policy_init
from katcli.pipeline.train_config import TrainDPOConfig, tiny
from katcli.pipeline.training import (
    Built,
    Prepared,
    StepCallback,
    TrainingStage,
    TrainResult,
    run_training,
)
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "dpo"


def tiny_dpo_config(**overrides: Any) -> TrainDPOConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (smoke tests), from the one SFT run."""
    return tiny(TrainDPOConfig, {"lr": 1e-3}, overrides)


# ---------------------------------------------------------------------------------------------------- models


def check_models(ws: Workspace, cfg: TrainDPOConfig) -> None:
    """Refuse a reward model or a non-checkpoint as --init or --ref before anything is read or locked."""
    from katcli.model.hf import is_hf_ref
    from katcli.pipeline.runs import POLICY_STAGES, resolve_run

    for flag, value in (("--init", cfg.init), ("--ref", cfg.ref)):
        if value is not None and not is_hf_ref(value):  # an hf: model is checked when it is loaded
            policy_checkpoint(resolve_run(ws, value, (*POLICY_STAGES, "rm"), flag=flag)[1], flag)


# ---------------------------------------------------------------------------------------------------- build


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.train.objectives.dpo import DPOObjective
    from katcli.train.ref_cache import cache_files

    cfg: TrainDPOConfig = prep.cfg
    loss_cfg = cfg.loss_config()
    ref = None if loss_cfg.reference_free else resolve_dpo_reference(prep)
    enc = prep.encode_pairs()
    out_dir = prep.ws.abs(f"{P.DPO_DIR}/{cfg.run_name}")
    ref_logps, cache_info = reference_logps(prep, enc, ref, out_dir) if ref is not None else (None, None)
    objective = DPOObjective(
        prep.model, enc, ref_logps, loss_cfg=loss_cfg, pad_id=prep.tokenizer.pad_token_id,
        heldout=prep.heldout(), eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist,
        progress=prep.progress,
    )
    train_index = np.asarray(prep.split.train, dtype=np.int64)
    if ref is None or cache_info is None:  # reference-free: no reference, no cache
        meta = {"objective": "dpo", "dpo": loss_cfg.to_dict(), "reference": None, "sequences": enc.stats}
        return Built(objective, enc.pair_lengths[train_index], meta=meta, stats={"reference": None})
    array_file, key_file = cache_files(out_dir)
    cache_info["files"] = [prep.ws.rel(array_file), prep.ws.rel(key_file)]
    # The meta says which numbers the run used, never whether they were computed or reused this time: a resumed
    # run must write the same bytes as an uninterrupted one. How the cache was found goes to the manifest's stats.
    meta = {
        "objective": "dpo",
        "dpo": loss_cfg.to_dict(),
        "reference": ref.to_json(prep.ws),
        "ref_cache": {"key": cache_info["key"], "files": cache_info["files"]},
        "sequences": enc.stats,
    }
    stats = {"reference": meta["reference"], "ref_cache": cache_info["state"]}
    stats.update({k: cache_info[k] for k in ("reused_from", "recomputed_because") if k in cache_info})
    return Built(objective, enc.pair_lengths[train_index], meta=meta, stats=stats, outputs=[array_file, key_file])


DPO_STAGE = TrainingStage(stage=STAGE, run_root=P.DPO_DIR, kind=POLICY_KIND, build=_build, what="policies")


def run_train_dpo(
    ws: Workspace,
    cfg: TrainDPOConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one DPO policy and record it as `dpo/<name>`; works alone or under torchrun."""
    cfg = default_policy_init(ws, cfg)
    check_models(ws, cfg)
    return run_training(ws, cfg, DPO_STAGE, progress=progress, on_step=on_step)

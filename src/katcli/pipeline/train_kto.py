"""The `kto` stage: KTO (Ethayarajh et al., 2024) of a policy against a frozen reference, into `kto_checkpoints/`.

The pairs are read as unpaired examples (a chosen reply desirable, a rejected one undesirable: TRL's
`unpair_preference_dataset`). The policy starts from `--init` (by default the workspace's only SFT run), the
reference is `--ref` or that same starting model, frozen, and its summed reply log-probs of every pair are DPO's
reference cache (`katcli.pipeline.reference`: computed once, or reused from a DPO run with the same key). The
KL reference point's mismatched examples (each training pair's prompt with a partner pair's replies,
`katcli.train.objectives.kto.kl_partners`) get their reference log-probs in one more pass before training.
Everything else — inputs, held-out split, sampler, resume, ranks, records — is `katcli.pipeline.training`; the
loss and evaluation are `katcli.train.objectives.kto`. The output is a plain GPT policy checkpoint. This module
knows nothing about Typer or Rich.
"""

from __future__ import annotations

from typing import Any

from katcli.model.run_meta import POLICY_KIND
from katcli.pipeline.train_config import TrainKTOConfig, tiny
from katcli.pipeline.training import Built, Prepared, StepCallback, TrainingStage, TrainResult, run_training
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P

STAGE = "kto"


def tiny_kto_config(**overrides: Any) -> TrainKTOConfig:
    """A configuration that trains in well under a minute on 2 CPU cores (smoke tests), from the one SFT run."""
    return tiny(TrainKTOConfig, {"lr": 1e-3}, overrides)


def _build(prep: Prepared) -> Built:
    import numpy as np

    from katcli.pipeline.reference import reference_logps, reference_pass, resolve_dpo_reference
    from katcli.train.objectives.kto import KTOObjective, kl_partners
    from katcli.train.ref_cache import cache_files
    from katcli.train.sequences import encode_pairs

    cfg: TrainKTOConfig = prep.cfg
    ref = resolve_dpo_reference(prep)
    fit = dict(max_len=cfg.max_len, max_response_len=cfg.resolved_max_response_len)
    enc = prep.encode_pairs()
    train = [int(i) for i in prep.split.train]
    partners = kl_partners(train, prep.prefix_ids)
    # Row k: training pair train[k]'s prompt with its partner's two replies (the mismatched examples).
    kl_enc = encode_pairs(
        prep.tokenizer,
        [(prep.pairs[i].messages, prep.pairs[j].chosen, prep.pairs[j].rejected) for i, j in zip(train, partners)],
        **fit,
    )
    out_dir = prep.ws.abs(f"{P.KTO_DIR}/{cfg.run_name}")
    ref_logps, cache_info = reference_logps(prep, enc, ref, out_dir)
    kl_ref = reference_pass(prep, kl_enc, ref)
    objective = KTOObjective(
        prep.model, enc, ref_logps, kl_enc=kl_enc, kl_ref=kl_ref, kl_row={i: k for k, i in enumerate(train)},
        loss_cfg=cfg.loss_config(), pad_id=prep.tokenizer.pad_token_id, heldout=prep.heldout(),
        eval_batch_size=max(prep.micro_batch_size, 8), dist=prep.dist, progress=prep.progress,
    )
    array_file, key_file = cache_files(out_dir)
    cache_info["files"] = [prep.ws.rel(array_file), prep.ws.rel(key_file)]
    meta = {
        "objective": "kto",
        "kto": cfg.loss_config().to_dict(),
        "reference": ref.to_json(prep.ws),
        "ref_cache": {"key": cache_info["key"], "files": cache_info["files"]},
        "kl_examples": {"rule": "next training pair with another prompt", "count": len(train)},
        "sequences": enc.stats,
    }
    stats = {"reference": meta["reference"], "ref_cache": cache_info["state"]}
    stats.update({k: cache_info[k] for k in ("reused_from", "recomputed_because") if k in cache_info})
    lengths = enc.pair_lengths[np.asarray(train, dtype=np.int64)]
    return Built(objective, lengths, meta=meta, stats=stats, outputs=[array_file, key_file])


KTO_STAGE = TrainingStage(stage=STAGE, run_root=P.KTO_DIR, kind=POLICY_KIND, build=_build, what="policies")


def run_train_kto(
    ws: Workspace,
    cfg: TrainKTOConfig,
    *,
    progress: ProgressFn = no_progress,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train (or resume) one KTO policy and record it as `kto/<name>`; works alone or under torchrun."""
    from katcli.pipeline.runs import default_policy_init
    from katcli.pipeline.train_dpo import check_models

    cfg = default_policy_init(ws, cfg)
    check_models(ws, cfg)
    return run_training(ws, cfg, KTO_STAGE, progress=progress, on_step=on_step)

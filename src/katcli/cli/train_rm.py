"""`kat train rm`: train a reward model (uniform or density-aware sampling) and show how it did on held-out pairs.

A plain command function, registered on the `train` group in `cli/app.py`. The shared flags are
`katcli.cli.train_options`; this command adds `--reward-centering`, runs `run_train_rm` under a live progress line
(loss, accuracy, margin, learning rate, tokens/s) and prints a summary with the held-out accuracy table. It knows
nothing about how a reward model is trained.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli import train_options as T
from katcli.cli.train_live import accuracy_table, is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of


def train_rm(
    ctx: typer.Context,
    name: T.Name = None,
    init: T.Init = None,
    chat_template: T.ChatTemplate = None,
    trust_remote_code: T.TrustRemoteCode = False,
    gradient_checkpointing: T.GradientCheckpointing = False,
    fsdp: T.Fsdp = False,
    depth: T.Depth = None,
    max_len: T.MaxLen = 512,
    max_response_len: T.MaxResponseLen = None,
    density_aware: T.DensityAware = False,
    pair_weighting: T.PairWeighting = None,
    val_ratio: T.ValRatio = 0.05,
    seed: T.Seed = 0,
    no_bucketing: T.NoBucketing = False,
    max_steps: T.MaxSteps = 1000,
    batch_size: T.BatchSize = 32,
    micro_batch_size: T.MicroBatchSize = None,
    lr: T.LR = None,
    warmup_steps: T.WarmupSteps = None,
    weight_decay: T.WeightDecay = 0.0,
    grad_clip: T.GradClip = 1.0,
    reward_centering: Annotated[
        float, typer.Option("--reward-centering", metavar="C", help="Weight of the (r_c + r_r)² term that keeps "
                            "rewards centred on zero (0: off).", rich_help_panel=T.OPTIM),
    ] = 0.0,
    eval_every: T.EvalEvery = 250,
    save_every: T.SaveEvery = 250,
    resume: T.Resume = False,
    device: T.Device = "auto",
    dtype: T.Dtype = "auto",
    threads: T.Threads = None,
    force: T.Force = False,
) -> None:
    """Train a Bradley–Terry reward model on the pairs, sampling uniformly or by prompt density.

    Reads data/pairs_all.jsonl, data/prefixes_all.jsonl, the tokenizer and (with --density-aware) the density
    weights; holds out --val-ratio of the prompts; writes rm_checkpoints/NAME/ (model, meta, optimizer and sampler
    state, metrics.jsonl). Multi-process: torchrun --nproc_per_node=N -m katcli train rm ...

    Example: kat -w ./exp train rm --density-aware --init nanochat-sft-d20 --max-steps 2000
    """
    from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm

    cfg = TrainRMConfig(**T.common_config_kwargs(locals()), reward_centering=reward_centering)
    state = state_of(ctx)
    fields = {"loss": ("loss", ".4f"), "accuracy": ("acc", ".2f"), "margin": ("margin", "+.2f")}
    with live(state, fields) as (report, on_step):
        result = run_train_rm(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    out = state.out
    print_run_summary(state, result)
    if result.eval is not None:
        out.print(accuracy_table(
            f"Held-out accuracy, 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            result.eval.to_json(),
        ))
    out.print(f"Wrote {result.directory}", markup=False)

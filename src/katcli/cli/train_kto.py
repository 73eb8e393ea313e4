"""`kat train kto`: KTO of a policy against a frozen reference, the pairs read as unpaired examples.

A plain command function, registered on the `train` group in `cli/app.py`: the shared training flags
(`katcli.cli.train_options`) plus the reference and KTO's β and class weights. It runs `run_train_kto` under a live
progress line and prints the held-out implicit-reward accuracy table. It knows nothing about how KTO is done.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli import train_options as T
from katcli.cli.train_dpo import Depth, Init
from katcli.cli.train_live import accuracy_table, is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of

_KTO = "KTO"


def train_kto(
    ctx: typer.Context,
    name: T.Name = None,
    init: Init = None,
    chat_template: T.ChatTemplate = None,
    trust_remote_code: T.TrustRemoteCode = False,
    gradient_checkpointing: T.GradientCheckpointing = False,
    fsdp: T.Fsdp = False,
    ref: Annotated[
        str | None,
        typer.Option("--ref", metavar="RUN|DIR|hf:NAME", help="The frozen reference policy (default: the --init "
                     "model). Its log-probs are computed once and cached in the run directory, as DPO's.",
                     rich_help_panel=_KTO, show_default=False),
    ] = None,
    beta: Annotated[float, typer.Option("--beta", metavar="B", help="Scale of the implicit reward "
                                        "B·log π/π_ref inside KTO's sigmoid value function.",
                                        rich_help_panel=_KTO)] = 0.1,
    desirable_weight: Annotated[float, typer.Option("--desirable-weight", metavar="W", help="λ_D: the weight of "
                                                    "the chosen (desirable) replies' losses.",
                                                    rich_help_panel=_KTO)] = 1.0,
    undesirable_weight: Annotated[float, typer.Option("--undesirable-weight", metavar="W", help="λ_U: the weight "
                                                      "of the rejected (undesirable) replies' losses.",
                                                      rich_help_panel=_KTO)] = 1.0,
    depth: Depth = None,
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
    eval_every: T.EvalEvery = 250,
    save_every: T.SaveEvery = 250,
    resume: T.Resume = False,
    device: T.Device = "auto",
    threads: T.Threads = None,
    force: T.Force = False,
) -> None:
    """Train a policy with KTO on the pairs (chosen replies desirable, rejected ones undesirable), against a frozen
    reference, sampling uniformly or by prompt density.

    KTO's reference point is the policy's KL to the reference on mismatched examples (each training prompt with
    another pair's replies), as TRL computes it. The reference's reply log-probs are computed once before training
    and cached in the run directory (a DPO run's cache with the same reference is reused). Evaluates the policy as
    an implicit reward model (β·log π/π_ref) on the held-out pairs, per source and per density quintile. Writes
    kto_checkpoints/NAME/, a plain GPT policy checkpoint. Multi-process: torchrun --nproc_per_node=N -m katcli
    train kto ...

    Example: kat -w ./exp train kto --init sft/uniform --density-aware --beta 0.1 --max-steps 2000
    """
    from katcli.pipeline.train_kto import TrainKTOConfig, run_train_kto

    cfg = TrainKTOConfig(
        **T.common_config_kwargs(locals()), ref=ref, beta=beta, desirable_weight=desirable_weight,
        undesirable_weight=undesirable_weight,
    )
    state = state_of(ctx)
    fields = {"loss": ("loss", ".4f"), "rewards/accuracies": ("acc", ".2f"), "kl": ("kl", ".3f")}
    with live(state, fields) as (report, on_step):
        result = run_train_kto(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    out = state.out
    print_run_summary(state, result)
    if result.eval is not None:
        ev = result.eval.to_json()
        out.print(accuracy_table(
            f"Held-out implicit-reward accuracy (h > 0), 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            ev,
        ))
        out.print(f"Mean held-out margin β·h: {ev['mean_margin']:+.4f}", markup=False)
    out.print(f"Wrote {result.directory}", markup=False)

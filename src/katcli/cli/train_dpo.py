"""`kat train dpo`: direct preference optimisation of a policy against a frozen reference.

A plain command function, registered on the `train` group in `cli/app.py`: the shared training flags
(`katcli.cli.train_options`) plus the reference and the loss. It runs `run_train_dpo` under a live progress line
(loss, implicit-reward accuracy and margin, learning rate, tokens/s) and prints the held-out implicit-reward accuracy
table. It knows nothing about how DPO is done.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli import train_options as T
from katcli.cli.train_live import accuracy_table, is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of

_DPO = "DPO"

Init = Annotated[
    str | None,
    typer.Option("--init", metavar="RUN|DIR", help="The starting policy: an SFT run (sft_checkpoints/), an imported "
                 "model (models/; STAGE/NAME when several stages have the name) or a checkpoint directory "
                 "(default: the workspace's SFT run, when there is exactly one).", rich_help_panel=T.MODEL,
                 show_default=False),
]
Depth = Annotated[
    int | None,
    typer.Option("--depth", metavar="N", help="A fresh GPT of this depth as both policy and reference: a toy for "
                 "trying the pipeline; DPO from a random model learns nothing useful.", rich_help_panel=T.MODEL,
                 show_default=False),
]


def train_dpo(
    ctx: typer.Context,
    name: T.Name = None,
    init: Init = None,
    chat_template: T.ChatTemplate = None,
    trust_remote_code: T.TrustRemoteCode = False,
    gradient_checkpointing: T.GradientCheckpointing = False,
    fsdp: T.Fsdp = False,
    ref: Annotated[
        str | None,
        typer.Option("--ref", metavar="RUN|DIR|hf:NAME", help="The frozen reference policy: a run, a directory or "
                     "hf:NAME|DIR (a Hugging Face causal LM with the policy's vocabulary) (default: the --init "
                     "model). Its log-probs are computed once and cached in the run directory.", rich_help_panel=_DPO,
                     show_default=False),
    ] = None,
    beta: Annotated[float, typer.Option("--beta", metavar="B", help="Strength of the pull toward the reference "
                                        "(the implicit reward is B·log π/π_ref).", rich_help_panel=_DPO)] = 0.1,
    loss: Annotated[
        str, typer.Option("--loss", metavar="sigmoid|ipo|hinge|robust|simpo|orpo", help="sigmoid: DPO; ipo: squared "
                          "loss on per-token log-ratios; hinge: SLiC; robust: unbiased under label noise "
                          "--label-smoothing; reference-free (no reference pass, no cache): simpo: SimPO's "
                          "length-normalised margin (B ≈ 2 with --simpo-gamma); orpo: NLL + B × ORPO's odds-ratio "
                          "term.", rich_help_panel=_DPO),
    ] = "sigmoid",
    label_smoothing: Annotated[
        float, typer.Option("--label-smoothing", metavar="E", help="Assumed share of flipped labels, below 0.5: "
                            "conservative DPO with sigmoid, the noise rate with robust.", rich_help_panel=_DPO),
    ] = 0.0,
    sft_weight: Annotated[
        float, typer.Option("--sft-weight", metavar="A", help="Add A × the chosen reply's mean token NLL (RPO), so "
                            "the chosen reply's likelihood does not fall (0: off).", rich_help_panel=_DPO),
    ] = 0.0,
    simpo_gamma: Annotated[
        float | None, typer.Option("--simpo-gamma", metavar="G", help="SimPO's target margin γ (--loss simpo only; "
                                   "default 0.5, TRL's).", rich_help_panel=_DPO, show_default=False),
    ] = None,
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
    """Train a policy with DPO on the pairs, against a frozen reference, sampling uniformly or by prompt density.

    The reference's reply log-probs of every pair are computed once before training (cached in the run directory,
    reused by --resume and by any run with the same reference, pairs and truncation), so training holds one model.
    Evaluates the policy as an implicit reward model on the held-out pairs (the same prompts as `kat train rm`
    and `kat train sft` for one --seed and --val-ratio): accuracy of β·log π/π_ref per source and per density
    quintile. Writes dpo_checkpoints/NAME/, a plain GPT policy checkpoint usable as --init anywhere.
    Multi-process: torchrun --nproc_per_node=N -m katcli train dpo ...

    Example: kat -w ./exp train dpo --init sft/uniform --density-aware --beta 0.1 --max-steps 2000
    """
    from katcli.pipeline.train_dpo import TrainDPOConfig, run_train_dpo

    cfg = TrainDPOConfig(
        **T.common_config_kwargs(locals()), ref=ref, beta=beta, loss=loss, label_smoothing=label_smoothing,
        sft_weight=sft_weight, simpo_gamma=simpo_gamma,
    )
    state = state_of(ctx)
    fields = {"loss": ("loss", ".4f"), "rewards/accuracies": ("acc", ".2f"), "rewards/margins": ("margin", "+.3f")}
    with live(state, fields) as (report, on_step):
        result = run_train_dpo(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    out = state.out
    print_run_summary(state, result)
    if result.eval is not None:
        ev = result.eval.to_json()
        # Reference-free losses: the implicit reward is β × the reply's mean token log-prob (SimPO's, ORPO's).
        rule, margin = ("β·log π/|y|, chosen > rejected", "β·Δ(log π/|y|)") if cfg.loss_config().reference_free \
            else ("h > 0", "β·h")
        out.print(accuracy_table(
            f"Held-out implicit-reward accuracy ({rule}), 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            ev,
        ))
        out.print(f"Mean held-out margin {margin}: {ev['mean_margin']:+.4f}", markup=False)
    out.print(f"Wrote {result.directory}", markup=False)

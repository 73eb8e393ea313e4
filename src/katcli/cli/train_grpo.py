"""`kat train grpo`: on-policy RL (GRPO) of a policy against a frozen reward model, uniform or density-aware.

A plain command function, registered on the `train` group in `cli/app.py`. It takes the shared training flags
(`katcli.cli.train_options`; `--prompts-per-step` stands for the shared batch size) plus the rollout and loss flags
declared here, runs `run_train_grpo` under a live progress line (reward, KL, reply length, the step's time split)
and prints the held-out reward table. It knows nothing about how GRPO is done.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli import train_options as T
from katcli.cli.train_live import is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of

ROLLOUT = "Rollout"
LOSS = "GRPO loss"

RM = Annotated[
    str | None,
    typer.Option("--rm", metavar="RUN|DIR|hf:NAME", help="The frozen reward model that scores replies: a run of "
                 "rm_checkpoints/, a checkpoint directory, or hf:NAME|DIR (a Hugging Face sequence classifier with "
                 "num_labels=1, as it is) (required).", rich_help_panel=T.MODEL,
                 show_default=False),
]
Ref = Annotated[
    str | None,
    typer.Option("--ref", metavar="RUN|DIR|hf:NAME", help="KL reference policy: a run, a directory or hf:NAME|DIR "
                 "(a Hugging Face causal LM with the policy's vocabulary) (default: the --init model, frozen; none "
                 "with --beta 0).", rich_help_panel=T.MODEL, show_default=False),
]
PromptsPerStep = Annotated[
    int, typer.Option("--prompts-per-step", metavar="N", help="Prompts per optimizer step, over all processes.",
                      rich_help_panel=T.OPTIM),
]
# GRPO's own defaults (pipeline.train_grpo.TrainGRPOConfig.LR_INIT / LR_SCRATCH), not the shared option's.
GRPOLR = Annotated[
    float | None,
    typer.Option("--lr", metavar="LR", help="Peak learning rate (default 1e-6 with --init, 1e-4 from scratch; 1e-6 is "
                 "TRL's GRPO default).", rich_help_panel=T.OPTIM, show_default=False),
]
PromptMicroBatch = Annotated[
    int | None,
    typer.Option("--micro-batch-size", metavar="N", help="Prompts (each with --group-size replies) per forward "
                 "pass per process (default: the process's whole share).", rich_help_panel=T.OPTIM,
                 show_default=False),
]
GroupSize = Annotated[int, typer.Option("--group-size", metavar="G", help="Replies sampled per prompt.",
                                        rich_help_panel=ROLLOUT)]
MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Reply length cap; a reply cut "
                                           "here counts as truncated.", rich_help_panel=ROLLOUT)]
Temperature = Annotated[float, typer.Option("--temperature", metavar="T", help="Sampling temperature.",
                                            rich_help_panel=ROLLOUT)]
TopK = Annotated[int | None, typer.Option("--top-k", metavar="N", help="Sample among the N likeliest tokens.",
                                          rich_help_panel=ROLLOUT, show_default=False)]
TopP = Annotated[float | None, typer.Option("--top-p", metavar="P", help="Nucleus sampling mass.",
                                            rich_help_panel=ROLLOUT, show_default=False)]
EvalPrompts = Annotated[int, typer.Option("--eval-prompts", metavar="N", help="Held-out prompts evaluated (a "
                                          "fixed, seeded choice).", rich_help_panel=ROLLOUT)]
EvalSamples = Annotated[int, typer.Option("--eval-samples", metavar="K", help="Sampled replies per held-out "
                                          "prompt (besides the greedy one).", rich_help_panel=ROLLOUT)]
Beta = Annotated[float, typer.Option("--beta", metavar="B", help="Weight of the k3 KL penalty to the reference "
                                     "(0: off, no reference loaded).", rich_help_panel=LOSS)]
Epsilon = Annotated[float, typer.Option("--epsilon", metavar="E", help="PPO clip: ratios kept in [1 − E, 1 + E].",
                                        rich_help_panel=LOSS)]
EpsilonHigh = Annotated[float | None, typer.Option("--epsilon-high", metavar="E", help="Upper clip (DAPO's "
                                                   "clip-higher; default --epsilon).", rich_help_panel=LOSS,
                                                   show_default=False)]
NumIterations = Annotated[int, typer.Option("--num-iterations", metavar="N", help="Optimizer updates per rollout "
                                            "batch (1: fully on-policy).", rich_help_panel=LOSS)]
ScaleRewards = Annotated[str, typer.Option("--scale-rewards", metavar="group|batch|none", help="Divide "
                                           "advantages by the group's reward std, the batch's, or nothing "
                                           "(Dr. GRPO); --advantage group only.", rich_help_panel=LOSS)]
Advantage = Annotated[str, typer.Option("--advantage", metavar="group|rloo|reinforce++", help="The baseline: "
                                       "group-relative (GRPO), leave-one-out over the group (RLOO), or none, with "
                                       "the batch's rewards whitened over its reply tokens (REINFORCE++).",
                                       rich_help_panel=LOSS)]
LossType = Annotated[str, typer.Option("--loss-type", metavar="grpo|dr_grpo|dapo", help="Loss normalisation: "
                                       "per reply then per batch (grpo), by replies × --max-new-tokens (dr_grpo), "
                                       "by reply tokens (dapo).", rich_help_panel=LOSS)]


def _cell(x: Any, spec: str = "+.3f") -> str:
    return "–" if x is None else format(x, spec)


def print_heldout_reward(out: Any, result: Any) -> None:
    """The held-out reward table of an on-policy run (GRPO, PPO)."""
    if result.eval is None:
        return
    from katcli.train.metrics import quintile_label

    ev = result.eval.to_json()
    table = Table(title=f"Held-out reward ({ev['overall']['n']:,} prompts)", title_justify="left")
    for col in ("Group", "Prompts", "Greedy", "Sampled", "Length"):
        table.add_column(col)

    def row(label: str, g: dict[str, Any]) -> None:
        table.add_row(label, f"{g['n']:,}", _cell(g["greedy_reward"]), _cell(g["sampled_reward"]),
                      _cell(g["sampled_length"], ".1f"))

    row("overall", ev["overall"])
    for src, g in ev["by_source"].items():
        row(src, g)
    for q, g in enumerate(ev["by_quintile"] or []):
        row(quintile_label(q), g)
    out.print(table)


def train_grpo(
    ctx: typer.Context,
    rm: RM = None,
    name: T.Name = None,
    init: T.Init = None,
    chat_template: T.ChatTemplate = None,
    trust_remote_code: T.TrustRemoteCode = False,
    gradient_checkpointing: T.GradientCheckpointing = False,
    fsdp: T.Fsdp = False,
    ref: Ref = None,
    depth: T.Depth = None,
    max_len: T.MaxLen = 512,
    density_aware: T.DensityAware = False,
    val_ratio: T.ValRatio = 0.05,
    seed: T.Seed = 0,
    no_bucketing: T.NoBucketing = False,
    prompts_per_step: PromptsPerStep = 16,
    group_size: GroupSize = 8,
    max_new_tokens: MaxNewTokens = 128,
    temperature: Temperature = 1.0,
    top_k: TopK = None,
    top_p: TopP = None,
    beta: Beta = 0.04,
    epsilon: Epsilon = 0.2,
    epsilon_high: EpsilonHigh = None,
    num_iterations: NumIterations = 1,
    scale_rewards: ScaleRewards = "group",
    advantage: Advantage = "group",
    loss_type: LossType = "dapo",
    max_steps: T.MaxSteps = 1000,
    micro_batch_size: PromptMicroBatch = None,
    lr: GRPOLR = None,
    warmup_steps: T.WarmupSteps = None,
    weight_decay: T.WeightDecay = 0.0,
    grad_clip: T.GradClip = 1.0,
    eval_every: T.EvalEvery = 250,
    eval_prompts: EvalPrompts = 64,
    eval_samples: EvalSamples = 2,
    save_every: T.SaveEvery = 250,
    resume: T.Resume = False,
    device: T.Device = "auto",
    threads: T.Threads = None,
    force: T.Force = False,
) -> None:
    """Improve a policy by GRPO against a frozen reward model, sampling prompts uniformly or by density.

    Each step draws --prompts-per-step training prompts (held-out prompts are never trained on), samples
    --group-size replies to each from the current policy, scores them with the reward model --rm, and takes the
    clipped policy-gradient step on the group-relative advantages with a k3 KL penalty (--beta) to the reference.
    Evaluates greedy and sampled replies to fixed held-out prompts, per source and per density quintile. Writes
    grpo_checkpoints/NAME/: a plain GPT checkpoint. Multi-process: torchrun --nproc_per_node=N -m katcli train grpo

    Example: kat -w ./exp train grpo --rm uniform --init sft/uniform --density-aware --max-steps 500
    """
    from katcli.pipeline.train_grpo import TrainGRPOConfig, run_train_grpo

    batch_size, pair_weighting, max_response_len = prompts_per_step, None, None
    cfg = TrainGRPOConfig(
        **T.common_config_kwargs(locals()), rm=rm, ref=ref, group_size=group_size, max_new_tokens=max_new_tokens,
        temperature=temperature, top_k=top_k, top_p=top_p, beta=beta, epsilon=epsilon, epsilon_high=epsilon_high,
        num_iterations=num_iterations, scale_rewards=scale_rewards, advantage=advantage, loss_type=loss_type,
        eval_prompts=eval_prompts,
        eval_samples=eval_samples,
    )
    state = state_of(ctx)
    fields = {
        "reward": ("reward", "+.3f"), "kl": ("kl", ".4f"), "completions/mean_length": ("len", ".1f"),
        "rollout_s": ("rollout", ".2f"), "scoring_s": ("score", ".2f"), "update_s": ("update", ".2f"),
    }
    with live(state, fields) as (report, on_step):
        result = run_train_grpo(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    out = state.out
    print_run_summary(state, result, items="training prompts")
    t = result.run_stats
    if t:
        out.print(
            f"Time: rollout {t['time_rollout_s']:,.1f} s ({t['rollout_tokens_per_s']:,.0f} reply tokens/s), "
            f"scoring {t['time_scoring_s']:,.1f} s, log-probs {t['time_logprob_s']:,.1f} s, "
            f"updates {t['time_update_s']:,.1f} s",
            markup=False,
        )
    print_heldout_reward(out, result)
    out.print(f"Wrote {result.directory}", markup=False)

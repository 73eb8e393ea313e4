"""`kat train ppo`: PPO of a policy against a frozen reward model, with a separate critic, uniform or density-aware.

A plain command function, registered on the `train` group in `cli/app.py`: the shared training flags, GRPO's
rollout flags (`katcli.cli.train_grpo`) and PPO's own. It runs `run_train_ppo` under a live progress line and prints
the held-out reward table as `kat train grpo` does. It knows nothing about how PPO is done.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli import train_options as T
from katcli.cli.train_grpo import (
    RM,
    EvalPrompts,
    EvalSamples,
    MaxNewTokens,
    PromptMicroBatch,
    PromptsPerStep,
    Ref,
    Temperature,
    TopK,
    TopP,
    print_heldout_reward,
)
from katcli.cli.train_live import is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of

PPO = "PPO"


def _opt(flag: str, metavar: str, text: str) -> typer.models.OptionInfo:
    return typer.Option(flag, metavar=metavar, help=text, rich_help_panel=PPO)


def train_ppo(
    ctx: typer.Context,
    rm: RM = None,
    name: T.Name = None,
    init: T.Init = None,
    ref: Ref = None,
    depth: T.Depth = None,
    max_len: T.MaxLen = 512,
    density_aware: T.DensityAware = False,
    val_ratio: T.ValRatio = 0.05,
    seed: T.Seed = 0,
    no_bucketing: T.NoBucketing = False,
    prompts_per_step: PromptsPerStep = 16,
    max_new_tokens: MaxNewTokens = 128,
    temperature: Temperature = 1.0,
    top_k: TopK = None,
    top_p: TopP = None,
    kl_coef: Annotated[float, _opt("--kl-coef", "B", "Per-token KL penalty in the reward: r_t = −B·kl_t (+ the "
                                   "score on the last token); 0: no reference loaded.")] = 0.05,
    kl_estimator: Annotated[str, _opt("--kl-estimator", "k1|k3", "KL estimate per sampled token: k1 = log π − "
                                      "log π_ref (TRL's default) or k3.")] = "k1",
    gamma: Annotated[float, _opt("--gamma", "G", "Discount factor of GAE.")] = 1.0,
    lam: Annotated[float, _opt("--lam", "L", "GAE's λ (1: Monte Carlo returns, 0: one-step TD).")] = 0.95,
    cliprange: Annotated[float, _opt("--cliprange", "E", "Policy ratio clip: [1 − E, 1 + E].")] = 0.2,
    cliprange_value: Annotated[float, _opt("--cliprange-value", "E", "Value clip around the rollout's "
                                           "values.")] = 0.2,
    vf_coef: Annotated[float, _opt("--vf-coef", "C", "Weight of the value loss in the update's loss.")] = 0.1,
    ppo_epochs: Annotated[int, _opt("--ppo-epochs", "N", "Passes over each rollout batch.")] = 4,
    num_minibatches: Annotated[int, _opt("--num-minibatches", "M", "Updates per pass, each on 1/M of the batch "
                                         "(a seeded shuffle per pass).")] = 1,
    max_steps: T.MaxSteps = 1000,
    micro_batch_size: PromptMicroBatch = None,
    lr: Annotated[float | None, typer.Option("--lr", metavar="LR", help="Peak learning rate of the policy and the "
                                             "critic (default 3e-6 with --init, TRL's; 1e-4 from scratch).",
                                             rich_help_panel=T.OPTIM, show_default=False)] = None,
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
    """Improve a policy by PPO against a frozen reward model, sampling prompts uniformly or by density.

    Each step samples one reply to each of --prompts-per-step training prompts with the current policy, scores it
    with --rm, puts a per-token KL penalty (--kl-coef) to the reference in the reward, estimates advantages with GAE
    from a separate critic (started from the reward model when it shares the policy's tokenizer), whitens them,
    and takes --ppo-epochs × --num-minibatches clipped updates of the policy and the critic. Evaluates greedy and
    sampled replies to fixed held-out prompts, per source and per density quintile. Writes ppo_checkpoints/NAME/:
    a plain GPT checkpoint. Multi-process: torchrun --nproc_per_node=N -m katcli train ppo ...

    Example: kat -w ./exp train ppo --rm uniform --init sft/uniform --density-aware --max-steps 500
    """
    from katcli.pipeline.train_ppo import TrainPPOConfig, run_train_ppo

    batch_size, pair_weighting, max_response_len = prompts_per_step, None, None
    chat_template, trust_remote_code, gradient_checkpointing, fsdp = None, False, False, False
    cfg = TrainPPOConfig(
        **T.common_config_kwargs(locals()), rm=rm, ref=ref, max_new_tokens=max_new_tokens, temperature=temperature,
        top_k=top_k, top_p=top_p, kl_coef=kl_coef, kl_estimator=kl_estimator, gamma=gamma, lam=lam,
        cliprange=cliprange, cliprange_value=cliprange_value, vf_coef=vf_coef, ppo_epochs=ppo_epochs,
        num_minibatches=num_minibatches, eval_prompts=eval_prompts, eval_samples=eval_samples,
    )
    state = state_of(ctx)
    fields = {"objective/scores": ("score", "+.3f"), "objective/kl": ("kl", ".4f"),
              "loss/value_avg": ("vf", ".4f"), "completions/mean_length": ("len", ".1f")}
    with live(state, fields) as (report, on_step):
        result = run_train_ppo(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    print_run_summary(state, result, items="training prompts")
    print_heldout_reward(state.out, result)
    state.out.print(f"Wrote {result.directory}", markup=False)

"""`kat train ppo`: PPO of a policy against a frozen reward model, with a separate critic, uniform or density-aware.

The flags are `TrainPPOConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_ppo` under a
live progress line and prints the held-out reward table as `kat train grpo` does.
"""

from __future__ import annotations

import typer

from katcli.cli.config_options import config_command
from katcli.cli.train_grpo import print_heldout_reward
from katcli.cli.train_live import run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainPPOConfig


@config_command(TrainPPOConfig)
def train_ppo(ctx: typer.Context, cfg: TrainPPOConfig) -> None:
    """Improve a policy by PPO against a frozen reward model, sampling prompts uniformly or by density.

    Each step samples one reply to each of --prompts-per-step training prompts with the current policy, scores it
    with --rm, puts a per-token KL penalty (--kl-coef) to the reference in the reward, estimates advantages with
    GAE from a separate critic (started from the reward model when it shares the policy's tokenizer), whitens
    them, and takes --ppo-epochs × --num-minibatches clipped updates of the policy and the critic. Evaluates greedy
    and sampled replies to fixed held-out prompts, per source and per density quintile. Writes
    ppo_checkpoints/NAME/: a plain GPT checkpoint. Multi-process: torchrun --nproc_per_node=N -m katcli train ppo

    Example: kat -w ./exp train ppo --rm uniform --init sft/uniform --density-aware --max-steps 500
    """
    from katcli.pipeline.train_ppo import run_train_ppo

    fields = {"objective/scores": ("score", "+.3f"), "objective/kl": ("kl", ".4f"),
              "loss/value_avg": ("vf", ".4f"), "completions/mean_length": ("len", ".1f")}
    result = run_objective(ctx, run_train_ppo, cfg, fields, items="training prompts")
    if result is None:
        return
    out = state_of(ctx).out
    print_heldout_reward(out, result)
    out.print(f"Wrote {result.directory}", markup=False)

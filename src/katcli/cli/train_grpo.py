"""`kat train grpo`: on-policy RL (GRPO) of a policy against a frozen reward model.

The flags are `TrainGRPOConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_grpo` under a
live progress line (reward, KL, reply length, the step's time split) and prints the held-out reward table.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from katcli.cli.config_options import config_command
from katcli.cli.train_live import run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainGRPOConfig


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


@config_command(TrainGRPOConfig)
def train_grpo(ctx: typer.Context, cfg: TrainGRPOConfig) -> None:
    """Improve a policy by GRPO against a frozen reward model, sampling prompts uniformly or by density.

    Each step draws --prompts-per-step training prompts (held-out prompts are never trained on), samples
    --group-size replies to each from the current policy, scores them with the reward model --rm, and takes the
    clipped policy-gradient step on the group-relative advantages with a k3 KL penalty (--beta) to the reference.
    Evaluates greedy and sampled replies to fixed held-out prompts, per source and per density quintile. Writes
    grpo_checkpoints/NAME/: a plain GPT checkpoint. Multi-process: torchrun --nproc_per_node=N -m katcli train grpo

    Example: kat -w ./exp train grpo --rm uniform --init sft/uniform --density-aware --max-steps 500
    """
    from katcli.pipeline.train_grpo import run_train_grpo

    fields = {
        "reward": ("reward", "+.3f"), "kl": ("kl", ".4f"), "completions/mean_length": ("len", ".1f"),
        "rollout_s": ("rollout", ".2f"), "scoring_s": ("score", ".2f"), "update_s": ("update", ".2f"),
    }
    result = run_objective(ctx, run_train_grpo, cfg, fields, items="training prompts")
    if result is None:
        return
    out = state_of(ctx).out
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

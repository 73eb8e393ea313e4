"""`kat train dpo`: direct preference optimisation of a policy against a frozen reference.

The flags are `TrainDPOConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_dpo` under a
live progress line and prints the held-out implicit-reward accuracy table.
"""

from __future__ import annotations

import typer

from katcli.cli.config_options import config_command
from katcli.cli.train_live import accuracy_table, run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainDPOConfig


@config_command(TrainDPOConfig)
def train_dpo(ctx: typer.Context, cfg: TrainDPOConfig) -> None:
    """Train a policy with DPO on the pairs, against a frozen reference, sampling uniformly or by prompt density.

    The reference's reply log-probs of every pair are computed once before training (cached in the run directory,
    reused by --resume and by any run with the same reference, pairs and truncation), so training holds one model.
    Evaluates the policy as an implicit reward model on the held-out pairs (the same prompts as `kat train rm`
    and `kat train sft` for one --seed and --val-ratio): accuracy of β·log π/π_ref per source and per density
    quintile. Writes dpo_checkpoints/NAME/, a plain GPT policy checkpoint usable as --init anywhere.
    Multi-process: torchrun --nproc_per_node=N -m katcli train dpo ...

    Example: kat -w ./exp train dpo --init sft/uniform --density-aware --beta 0.1 --max-steps 2000
    """
    from katcli.pipeline.train_dpo import run_train_dpo

    fields = {"loss": ("loss", ".4f"), "rewards/accuracies": ("acc", ".2f"), "rewards/margins": ("margin", "+.3f")}
    result = run_objective(ctx, run_train_dpo, cfg, fields)
    if result is None:
        return
    out = state_of(ctx).out
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

"""`kat train kto`: KTO of a policy against a frozen reference, the pairs read as unpaired examples.

The flags are `TrainKTOConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_kto` under a
live progress line and prints the held-out implicit-reward accuracy table.
"""

from __future__ import annotations

import typer

from katcli.cli.config_options import config_command
from katcli.cli.train_live import accuracy_table, run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainKTOConfig


@config_command(TrainKTOConfig)
def train_kto(ctx: typer.Context, cfg: TrainKTOConfig) -> None:
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
    from katcli.pipeline.train_kto import run_train_kto

    fields = {"loss": ("loss", ".4f"), "rewards/accuracies": ("acc", ".2f"), "kl": ("kl", ".3f")}
    result = run_objective(ctx, run_train_kto, cfg, fields)
    if result is None:
        return
    out = state_of(ctx).out
    if result.eval is not None:
        ev = result.eval.to_json()
        out.print(accuracy_table(
            f"Held-out implicit-reward accuracy (h > 0), 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            ev,
        ))
        out.print(f"Mean held-out margin β·h: {ev['mean_margin']:+.4f}", markup=False)
    out.print(f"Wrote {result.directory}", markup=False)

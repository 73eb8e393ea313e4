"""`kat train rm`: train a reward model and show its held-out accuracy table.

The flags are `TrainRMConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_rm` under a live
progress line and prints a summary. It knows nothing about how a reward model is trained.
"""

from __future__ import annotations

import typer

from katcli.cli.config_options import config_command
from katcli.cli.train_live import accuracy_table, run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainRMConfig


@config_command(TrainRMConfig)
def train_rm(ctx: typer.Context, cfg: TrainRMConfig) -> None:
    """Train a Bradley–Terry reward model on the pairs, sampling uniformly or by prompt density.

    Reads data/pairs_all.jsonl, data/prefixes_all.jsonl, the tokenizer and (with --density-aware) the density
    weights; holds out --val-ratio of the prompts; writes rm_checkpoints/NAME/ (model, meta, optimizer and sampler
    state, metrics.jsonl). Multi-process: torchrun --nproc_per_node=N -m katcli train rm ...

    Example: kat -w ./exp train rm --density-aware --init nanochat-sft-d20 --max-steps 2000
    """
    from katcli.pipeline.train_rm import run_train_rm

    fields = {"loss": ("loss", ".4f"), "accuracy": ("acc", ".2f"), "margin": ("margin", "+.2f")}
    result = run_objective(ctx, run_train_rm, cfg, fields)
    if result is None:
        return
    out = state_of(ctx).out
    if result.eval is not None:
        out.print(accuracy_table(
            f"Held-out accuracy, 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            result.eval.to_json(),
        ))
    out.print(f"Wrote {result.directory}", markup=False)

"""`kat train sft`: supervised fine-tuning on the chosen replies, the starting policy for DPO and GRPO.

The flags are `TrainSFTConfig`'s fields (`katcli.cli.config_options`); the command runs `run_train_sft` under a
live progress line and prints the held-out reply NLL and perplexity table.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from katcli.cli.config_options import config_command
from katcli.cli.train_live import run_objective
from katcli.cli.workspace_opt import state_of
from katcli.pipeline.train_config import TrainSFTConfig


def _nll_cells(row: dict[str, Any]) -> tuple[str, str, str]:
    if not row["n"]:
        return "–", "–", "–"
    ppl = row["perplexity"]
    return f"{row['tokens']:,}", f"{row['nll']:.4f}", "–" if ppl is None else f"{ppl:,.2f}"


@config_command(TrainSFTConfig)
def train_sft(ctx: typer.Context, cfg: TrainSFTConfig) -> None:
    """Fine-tune a policy on the chosen replies (SFT), sampling pairs uniformly or by prompt density.

    Each training pair gives one example: its prompt rendered for completion, then the chosen reply; the loss is
    the mean NLL of the reply tokens only. Holds out the same prompts as `kat train rm` for the same --seed and
    --val-ratio, and reports held-out reply NLL and perplexity per source and per density quintile. Writes
    sft_checkpoints/NAME/: a plain GPT checkpoint, usable as --init for `kat train dpo|grpo|rm`.

    Example: kat -w ./exp train sft --init nanochat-base-d20 --density-aware --max-steps 2000
    """
    from katcli.pipeline.train_sft import run_train_sft

    result = run_objective(ctx, run_train_sft, cfg, {"loss": ("nll", ".4f"), "perplexity": ("ppl", ".1f")})
    if result is None:
        return
    out = state_of(ctx).out
    if result.eval is not None:
        from katcli.train.metrics import quintile_label

        ev = result.eval.to_json()
        table = Table(
            title=f"Held-out reply NLL per token ({result.heldout_pairs:,} replies, {result.heldout_prompts:,} prompts)",
            title_justify="left",
        )
        for col in ("Group", "Replies", "Tokens", "NLL", "Perplexity"):
            table.add_column(col)
        table.add_row("overall", f"{ev['overall']['n']:,}", *_nll_cells(ev["overall"]))
        for src, row in ev["by_source"].items():
            table.add_row(src, f"{row['n']:,}", *_nll_cells(row))
        for q, row in enumerate(ev["by_quintile"] or []):
            table.add_row(quintile_label(q), f"{row['n']:,}", *_nll_cells(row))
        out.print(table)
    out.print(f"Wrote {result.directory}", markup=False)

"""`kat train sft`: supervised fine-tuning on the chosen replies, the starting policy for DPO and GRPO.

A plain command function, registered on the `train` group in `cli/app.py`, taking exactly the shared training flags
(`katcli.cli.train_options`). It runs `run_train_sft` under a live progress line (reply NLL, perplexity, learning
rate, tokens/s) and prints the held-out reply NLL and perplexity table. It knows nothing about how SFT is done.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from katcli.cli import train_options as T
from katcli.cli.train_live import is_main_rank, live, print_run_summary
from katcli.cli.workspace_opt import state_of, workspace_of


def _nll_cells(row: dict[str, Any]) -> tuple[str, str, str]:
    if not row["n"]:
        return "–", "–", "–"
    ppl = row["perplexity"]
    return f"{row['tokens']:,}", f"{row['nll']:.4f}", "–" if ppl is None else f"{ppl:,.2f}"


def train_sft(
    ctx: typer.Context,
    name: T.Name = None,
    init: T.Init = None,
    chat_template: T.ChatTemplate = None,
    trust_remote_code: T.TrustRemoteCode = False,
    gradient_checkpointing: T.GradientCheckpointing = False,
    fsdp: T.Fsdp = False,
    depth: T.Depth = None,
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
    dtype: T.Dtype = "auto",
    threads: T.Threads = None,
    force: T.Force = False,
) -> None:
    """Fine-tune a policy on the chosen replies (SFT), sampling pairs uniformly or by prompt density.

    Each training pair gives one example: its prompt rendered for completion, then the chosen reply; the loss is
    the mean NLL of the reply tokens only. Holds out the same prompts as `kat train rm` for the same --seed and
    --val-ratio, and reports held-out reply NLL and perplexity per source and per density quintile. Writes
    sft_checkpoints/NAME/: a plain GPT checkpoint, usable as --init for `kat train dpo|grpo|rm`.

    Example: kat -w ./exp train sft --init nanochat-base-d20 --density-aware --max-steps 2000
    """
    from katcli.pipeline.train_sft import TrainSFTConfig, run_train_sft

    cfg = TrainSFTConfig(**T.common_config_kwargs(locals()))
    state = state_of(ctx)
    with live(state, {"loss": ("nll", ".4f"), "perplexity": ("ppl", ".1f")}) as (report, on_step):
        result = run_train_sft(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return
    out = state.out
    print_run_summary(state, result)
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

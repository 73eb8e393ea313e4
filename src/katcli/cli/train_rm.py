"""`kat train rm`: train a reward model (uniform or density-aware sampling) and show how it did on held-out pairs.

A plain command function, registered on the `train` group in `cli/app.py`. It parses flags into a
`TrainRMConfig`, runs `run_train_rm` under a live progress line (loss, accuracy, learning rate, tokens/s) and prints
a summary. Under torchrun every rank runs this command; only rank 0 draws or prints anything. It knows nothing about
how a reward model is trained.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.options import ForceUpstream
from katcli.cli.render import AppState, print_labelled
from katcli.cli.workspace_opt import state_of, workspace_of

_MODEL = "Model"
_SAMPLING = "Sampling & held-out set"
_OPTIM = "Optimisation"
_RUN = "Run"


def _is_main_rank() -> bool:
    # torchrun sets RANK; read it here without importing torch (kat --help must stay fast).
    return (os.environ.get("RANK") or "0") == "0"


@contextlib.contextmanager
def _live(state: AppState) -> Iterator[tuple[Any, Any]]:
    """A progress callback plus a per-step callback that shows loss / accuracy / lr / tokens/s on the bar."""
    from katcli.progress import no_progress

    if state.quiet or not _is_main_rank():
        yield no_progress, None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=state.err,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def task_id(task: str, total: int | None) -> Any:
        if not tasks:
            bars.start()  # lazily: a run that fails before any progress prints no empty bar
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total, info="")
        return tasks[task]

    def report(task: str, done: int, total: int | None = None) -> None:
        bars.update(task_id(task, total), completed=done, total=total)

    def on_step(m: dict[str, Any]) -> None:
        info = (
            f"loss {m['loss']:.4f}  acc {m['accuracy']:.2f}  margin {m['margin']:+.2f}  lr {m['lr']:.2e}  "
            f"{m.get('tokens_per_s', 0.0):,.0f} tok/s"
        )
        bars.update(task_id("training", None), info=info)

    try:
        yield report, on_step
    finally:
        if tasks:
            bars.stop()


def train_rm(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Run name: rm_checkpoints/NAME/ (default: uniform or density).",
                     rich_help_panel=_RUN, show_default=False),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option("--init", metavar="DIR", help="Start from this GPT checkpoint directory, or the name of a model "
                     "imported with `kat import nanochat`. What real runs use.", rich_help_panel=_MODEL,
                     show_default=False),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option("--depth", metavar="N", help="Train a fresh GPT of this depth from scratch (default 4 without "
                     "--init); for trying the pipeline, not for real reward models.", rich_help_panel=_MODEL,
                     show_default=False),
    ] = None,
    max_len: Annotated[
        int, typer.Option("--max-len", metavar="N", help="Tokens per sequence; longer pairs keep the response and "
                          "trim the prefix from the left.", rich_help_panel=_MODEL),
    ] = 512,
    max_response_len: Annotated[
        int | None,
        typer.Option("--max-response-len", metavar="N", help="Cap on response tokens (default: --max-len / 2).",
                     rich_help_panel=_MODEL, show_default=False),
    ] = None,
    density_aware: Annotated[
        bool, typer.Option("--density-aware", help="Sample rare prompts more often, by their density weight.",
                           rich_help_panel=_SAMPLING),
    ] = False,
    pair_weighting: Annotated[
        str | None,
        typer.Option("--pair-weighting", metavar="per-prompt|per-pair", help="With --density-aware: per-prompt "
                     "(default) gives each prompt its weight in total, shared by its pairs; per-pair gives every "
                     "pair its prompt's weight.", rich_help_panel=_SAMPLING, show_default=False),
    ] = None,
    val_ratio: Annotated[
        float, typer.Option("--val-ratio", metavar="R", help="Share of prompts held out (by a seeded hash of the "
                            "prefix id).", rich_help_panel=_SAMPLING),
    ] = 0.05,
    seed: Annotated[
        int, typer.Option("--seed", metavar="N", help="Seed of the held-out split, the sample stream and a fresh "
                          "model's init.", rich_help_panel=_SAMPLING),
    ] = 0,
    no_bucketing: Annotated[
        bool, typer.Option("--no-bucketing", help="Do not group pairs of similar length into batches.",
                           rich_help_panel=_SAMPLING),
    ] = False,
    max_steps: Annotated[int, typer.Option("--max-steps", metavar="N", help="Optimizer steps.",
                                           rich_help_panel=_OPTIM)] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Pairs per step, over all processes.",
                                            rich_help_panel=_OPTIM)] = 32,
    micro_batch_size: Annotated[
        int | None,
        typer.Option("--micro-batch-size", metavar="N", help="Pairs per forward pass per process; smaller than the "
                     "per-process share means gradient accumulation.", rich_help_panel=_OPTIM, show_default=False),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", metavar="LR", help="Peak learning rate (default 2e-5 with --init, 1e-3 from scratch).",
                     rich_help_panel=_OPTIM, show_default=False),
    ] = None,
    warmup_steps: Annotated[
        int | None,
        typer.Option("--warmup-steps", metavar="N", help="Linear warmup before cosine decay (default 5% of steps, "
                     "at most 100).", rich_help_panel=_OPTIM, show_default=False),
    ] = None,
    weight_decay: Annotated[float, typer.Option("--weight-decay", metavar="W", help="AdamW weight decay.",
                                                rich_help_panel=_OPTIM)] = 0.0,
    grad_clip: Annotated[float, typer.Option("--grad-clip", metavar="G", help="Gradient-norm clip (0: off).",
                                             rich_help_panel=_OPTIM)] = 1.0,
    reward_centering: Annotated[
        float, typer.Option("--reward-centering", metavar="C", help="Weight of the (r_c + r_r)² term that keeps "
                            "rewards centred on zero (0: off).", rich_help_panel=_OPTIM),
    ] = 0.0,
    eval_every: Annotated[int, typer.Option("--eval-every", metavar="N", help="Evaluate on held-out pairs every N "
                                            "steps (0: only at the end).", rich_help_panel=_RUN)] = 250,
    save_every: Annotated[int, typer.Option("--save-every", metavar="N", help="Checkpoint every N steps (0: only "
                                            "at the end); only the latest is kept.", rich_help_panel=_RUN)] = 250,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest checkpoint of this run exactly.",
                                         rich_help_panel=_RUN)] = False,
    device: Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda", help="Where to train.",
                                        rich_help_panel=_RUN)] = "auto",
    threads: Annotated[
        int | None,
        typer.Option("--threads", metavar="N", help="CPU threads for torch (default: torch's choice).",
                     rich_help_panel=_RUN, show_default=False),
    ] = None,
    force: ForceUpstream = False,
) -> None:
    """Train a Bradley–Terry reward model on the pairs, sampling uniformly or by prompt density.

    Reads data/pairs_all.jsonl, data/prefixes_all.jsonl, the tokenizer and (with --density-aware) the density
    weights; holds out --val-ratio of the prompts; writes rm_checkpoints/NAME/ (model, meta, optimizer and sampler
    state, metrics.jsonl). Multi-process: torchrun --nproc_per_node=N -m katcli train rm ...

    Example: kat -w ./exp train rm --density-aware --init nanochat-sft-d20 --max-steps 2000
    """
    from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm

    state = state_of(ctx)
    cfg = TrainRMConfig(
        name=name, density_aware=density_aware, pair_weighting=pair_weighting, init=init, depth=depth,
        max_steps=max_steps, batch_size=batch_size, micro_batch_size=micro_batch_size, lr=lr,
        weight_decay=weight_decay, warmup_steps=warmup_steps, grad_clip=grad_clip,
        reward_centering=reward_centering, max_len=max_len, max_response_len=max_response_len,
        val_ratio=val_ratio, eval_every=eval_every, save_every=save_every, bucketing=not no_bucketing,
        resume=resume, seed=seed, device=device, threads=threads, force=force,
    )
    with _live(state) as (report, on_step):
        result = run_train_rm(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not _is_main_rank():
        return
    out = state.out
    print_labelled(out, "Forced", result.forced_over)
    print_labelled(out, "Note", result.notes)
    out.print(
        f"Sampling: {result.weighting} over {result.train_pairs:,} training pairs ({result.train_prompts:,} "
        f"prompts); effective sample size {result.ess:,.1f} ({result.ess_fraction:.1%} of the pairs)",
        markup=False,
    )
    out.print(
        f"Trained {result.step:,} steps on {result.device} × {result.world_size}: "
        f"{result.tokens_per_s:,.0f} tokens/s, pad fraction {result.pad_fraction:.1%}",
        markup=False,
    )
    if result.eval is not None:
        from katcli.train.metrics import accuracy_cell, quintile_label

        ev = result.eval.to_json()
        table = Table(
            title=f"Held-out accuracy, 95% Wilson interval ({result.heldout_pairs:,} pairs, "
            f"{result.heldout_prompts:,} prompts)",
            title_justify="left",
        )
        for col in ("Group", "Pairs", "Accuracy"):
            table.add_column(col)
        table.add_row("overall", f"{ev['overall']['n']:,}", accuracy_cell(ev["overall"]))
        for src, acc in ev["by_source"].items():
            table.add_row(src, f"{acc['n']:,}", accuracy_cell(acc))
        for q, acc in enumerate(ev["by_quintile"] or []):
            table.add_row(quintile_label(q), f"{acc['n']:,}", accuracy_cell(acc))
        out.print(table)
    out.print(f"Wrote {result.directory}", markup=False)

"""What every `kat train …` objective shows while it runs and when it ends.

`run_objective` runs an objective's pipeline under the live line and prints the shared summary; `live(state, fields)` yields a progress callback and a per-step callback that shows the objective's chosen metrics
(`fields`: metric name → label) plus learning rate and tokens/s on the training bar; `print_run_summary` prints the
lines every objective shares (forced inputs, notes, sampling, throughput) and, last, where the run was written;
`accuracy_table` is the held-out accuracy table of the objectives that score pairs (reward models, DPO policies).
Under torchrun every rank runs the command; only rank 0 draws or prints anything.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from katcli.cli.render import AppState, print_labelled, sampling_label
from katcli.cli.workspace_opt import state_of, workspace_of


def is_main_rank() -> bool:
    # torchrun sets RANK; read it here without importing torch (kat --help must stay fast).
    return (os.environ.get("RANK") or "0") == "0"


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


@contextlib.contextmanager
def live(state: AppState, fields: dict[str, tuple[str, str]]) -> Iterator[tuple[Any, Callable[[dict], None] | None]]:
    """(progress callback, per-step callback); `fields` maps a metric to (label, format spec)."""
    from katcli.progress import no_progress

    if state.quiet or not is_main_rank():
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
        parts = [f"{label} {_fmt(m.get(key), spec)}" for key, (label, spec) in fields.items()]
        parts += [f"lr {_fmt(m.get('lr'), '.2e')}", f"{m.get('tokens_per_s', 0.0):,.0f} tok/s"]
        bars.update(task_id("training", None), info="  ".join(parts))

    try:
        yield report, on_step
    finally:
        if tasks:
            bars.stop()


def run_objective(ctx: Any, run: Callable[..., Any], cfg: Any, fields: dict[str, tuple[str, str]], *,
                  items: str = "training pairs") -> Any | None:
    """`run(workspace, cfg)` under the live line, then the shared summary; the result, or None with nothing to show."""
    state = state_of(ctx)
    with live(state, fields) as (report, on_step):
        result = run(workspace_of(ctx), cfg, progress=report, on_step=on_step)
    if state.quiet or not is_main_rank():
        return None
    print_run_summary(state, result, items=items)
    return result


def print_run_summary(state: AppState, result: Any, *, items: str = "training pairs") -> None:
    """Forced inputs, notes, the sampling distribution and throughput of a finished run."""
    out = state.out
    print_labelled(out, "Forced", result.forced_over)
    print_labelled(out, "Note", result.notes)
    unit = items.split()[-1]
    prompts = "" if unit == "prompts" else f" ({result.train_prompts:,} prompts)"  # GRPO draws prompts themselves
    out.print(
        f"Sampling: {sampling_label(result.weighting)} over {result.train_items or result.train_pairs:,} {items}"
        f"{prompts}; effective sample size {result.ess:,.1f} ({result.ess_fraction:.1%} of the {unit})",
        markup=False,
    )
    out.print(
        f"Trained {result.step:,} steps on {result.device} × {result.world_size}{' (FSDP)' if result.fsdp else ''}: "
        f"{result.tokens_per_s:,.0f} tokens/s, pad fraction {result.pad_fraction:.1%}"
        + (f", {result.state_bytes / 2**20:,.1f} MiB of weights, gradients and optimizer state per process"
           if result.fsdp else ""),
        markup=False,
    )


def accuracy_table(title: str, ev: dict[str, Any]) -> Any:
    """Held-out accuracy overall, per source and per density quintile (an `EvalReport.to_json()`), as a table."""
    from rich.table import Table

    from katcli.train.metrics import accuracy_cell, quintile_label

    table = Table(title=title, title_justify="left")
    for col in ("Group", "Pairs", "Accuracy"):
        table.add_column(col)
    table.add_row("overall", f"{ev['overall']['n']:,}", accuracy_cell(ev["overall"]))
    for src, acc in ev["by_source"].items():
        table.add_row(src, f"{acc['n']:,}", accuracy_cell(acc))
    for q, acc in enumerate(ev["by_quintile"] or []):
        table.add_row(quintile_label(q), f"{acc['n']:,}", accuracy_cell(acc))
    return table

"""`kat eval …`: the evaluation command group; `kat eval rm` compares reward models on one held-out set.

Commands are thin: they call `katcli.pipeline.eval_rm` and render its result as a side-by-side Rich table (overall,
per source, per density quintile, each with a Wilson 95% interval; for two models a Δ column with a paired interval
and McNemar's p-value) or as JSON (`--json`, schema `kat.eval.rm/1`).
This module knows nothing about how models are scored.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.render import AppState, print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of

app = typer.Typer(
    name="eval",
    help="Evaluate trained models on held-out pairs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _cell(acc: dict[str, Any] | None) -> str:
    if acc is None or not acc["n"]:
        return "–"
    lo, hi = acc["ci95"]
    return f"{acc['accuracy']:.3f} ({lo:.2f}–{hi:.2f})"


def _delta_cell(paired: dict[str, Any] | None) -> str:
    """Δ = B − A with its paired 95% bootstrap interval and McNemar's exact p-value."""
    if paired is None or not paired["n"]:
        return "–"
    lo, hi = paired["ci95"]
    return f"{paired['delta']:+.3f} ({lo:+.2f}…{hi:+.2f}) p={paired['mcnemar_p']:.2g}"


def _paired_rows(cmp: dict[str, Any]) -> list[dict[str, Any] | None]:
    """The paired statistics in `_groups`' row order: overall, each source, each density quintile."""
    return [cmp["overall"], *(cmp["by_source"][s] for s in sorted(cmp["by_source"])), *(cmp["by_quintile"] or [])]


def _groups(models: list[dict[str, Any]]) -> list[tuple[str, str, list]]:
    """(label, pair count, per-model accuracy dict) rows: overall, each source, each density quintile."""
    rows = [("overall", f"{models[0]['overall']['n']:,}", [m["overall"] for m in models])]
    sources = sorted({s for m in models for s in m["by_source"]})
    for s in sources:
        accs = [m["by_source"].get(s) for m in models]
        n = next((a["n"] for a in accs if a is not None), 0)
        rows.append((s, f"{n:,}", accs))
    if all(m["by_quintile"] is not None for m in models):
        last = len(models[0]["by_quintile"]) - 1
        for q in range(last + 1):
            label = f"Q{q + 1}" + (" commonest" if q == 0 else " rarest" if q == last else "")
            accs = [m["by_quintile"][q] for m in models]
            rows.append((label, f"{accs[0]['n']:,}", accs))
    return rows


def rm(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[str],
        typer.Argument(metavar="CKPT...", help="Run names under rm_checkpoints/ (e.g. uniform density) or "
                       "checkpoint directories.", show_default=False),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema kat.eval.rm/1).")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Pairs per forward pass.")] = 32,
    device: Annotated[str, typer.Option("--device", metavar="auto|cpu|cuda", help="Where to run the models.")] = "auto",
    threads: Annotated[
        int | None,
        typer.Option("--threads", metavar="N", help="CPU threads for torch (default: torch's choice).",
                     show_default=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Evaluate even if inputs are modified or stale, or the models were "
                           "trained on other pairs."),
    ] = False,
) -> None:
    """Compare reward models on the same held-out pairs: accuracy overall, per source and per density quintile.

    Held-out pairs are the prompts each model's training held out (same --seed and --val-ratio required); density
    quintiles run from Q1 (lowest weight, commonest prompts) to Q5 (highest weight, rarest prompts).

    Example: kat -w ./exp eval rm uniform density
    """
    from katcli.pipeline.eval_rm import run_eval_rm

    state = state_of(ctx)
    with progress(state if not as_json else _quiet(state)) as report:
        result = run_eval_rm(
            workspace_of(ctx), checkpoints, device=device, batch_size=batch_size, threads=threads, force=force,
            progress=report,
        )
    data = result.to_json()
    if as_json:
        state.out.print_json(json.dumps(data))
        return
    if state.quiet:
        return
    models = data["models"]
    held = data["heldout"]
    state.out.print(
        f"Held-out set: {held['pairs']:,} pairs from {held['prompts']:,} prompts "
        f"(--seed {held['seed']}, --val-ratio {held['val_ratio']})",
        markup=False,
    )
    for m in models:
        state.out.print(f"  {m['name']}: {m['weighting']} sampling, step {m['step']:,}, {m['path']}", markup=False)
    table = Table(title="Accuracy (95% Wilson interval)", title_justify="left")
    # The group label is the one column allowed to wrap, so narrow terminals never squeeze away the numbers.
    table.add_column("Group", overflow="fold")
    table.add_column("Pairs", justify="right", no_wrap=True)
    for m in models:
        table.add_column(m["name"], no_wrap=True)
    two = len(models) == 2
    if two:
        table.add_column("Δ", justify="right", no_wrap=True)
    paired = _paired_rows(data["comparisons"][0]) if two else []
    for row, (label, n, accs) in enumerate(_groups(models)):
        cells = [_cell(a) for a in accs]
        if two:
            cells.append(_delta_cell(paired[row] if row < len(paired) else None))
        table.add_row(label, n, *cells)
    state.out.print(table)
    if two:
        state.out.print(f"Δ: {models[1]['name']} − {models[0]['name']}; {data['comparisons'][0]['method']}", markup=False)
    print_labelled(state.out, "Note", data["notes"])


def _quiet(state: AppState) -> AppState:
    """JSON output must stay clean: no progress bars."""
    return replace(state, quiet=True)


app.command("rm", rich_help_panel="Reward models")(rm)

"""`kat eval …`: the evaluation command group; `kat eval rm` compares reward models on one held-out set.

Commands are thin: they call `katcli.pipeline.eval_rm` and render its result as a side-by-side Rich table (overall,
per source, per density quintile, each with a Wilson 95% interval) or as JSON (`--json`, schema `kat.eval.rm/1`).
This module knows nothing about how models are scored.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.options import ScoreBatchSize, ScoreDevice, ScoreThreads
from katcli.cli.render import AppState, print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.data.schema import SHORT_OF, SOURCES

app = typer.Typer(
    name="eval",
    help="Evaluate trained models on held-out pairs.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _sources(models: list[dict[str, Any]]) -> list[str]:
    """The sources evaluated: the downloadable ones in their usual order (hh, uf, se), then any others sorted."""
    found = {s for m in models for s in m["by_source"]}
    return [s for s in SOURCES if s in found] + sorted(found - set(SOURCES))


def _groups(models: list[dict[str, Any]]) -> list[tuple[str, str, list]]:
    """(label, pair count, per-model accuracy dict) rows: overall, each source (by its short name), each quintile."""
    rows = [("overall", f"{models[0]['overall']['n']:,}", [m["overall"] for m in models])]
    for s in _sources(models):
        accs = [m["by_source"].get(s) for m in models]
        n = next((a["n"] for a in accs if a is not None), 0)
        rows.append((SHORT_OF.get(s, s), f"{n:,}", accs))
    if all(m["by_quintile"] is not None for m in models):
        from katcli.train.metrics import quintile_label

        n = len(models[0]["by_quintile"])
        for q in range(n):
            accs = [m["by_quintile"][q] for m in models]
            rows.append((quintile_label(q, n), f"{accs[0]['n']:,}", accs))
    return rows


def rm(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[str],
        typer.Argument(metavar="CKPT...", help="Run names under rm_checkpoints/ (e.g. uniform density) or "
                       "checkpoint directories.", show_default=False),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema kat.eval.rm/1).")] = False,
    batch_size: ScoreBatchSize = 32,
    device: ScoreDevice = "auto",
    threads: ScoreThreads = None,
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
    from katcli.train.metrics import accuracy_cell

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
    # Labels are short (sources as hh/uf/se, spelled out below the table), so rows stay whole at 80 columns; only
    # an imported source's long name may fold, and then the numbers keep their room.
    table.add_column("Group", overflow="fold", min_width=len("Q1 commonest"))
    table.add_column("Pairs", justify="right", no_wrap=True)
    for m in models:
        table.add_column(m["name"], no_wrap=True)
    two = len(models) == 2
    if two:
        table.add_column("Δ", justify="right", no_wrap=True)
    for label, n, accs in _groups(models):
        cells = [accuracy_cell(a) for a in accs]
        if two:
            diff = "–" if None in accs or not accs[0]["n"] else f"{accs[1]['accuracy'] - accs[0]['accuracy']:+.3f}"
            cells.append(diff)
        table.add_row(label, n, *cells)
    state.out.print(table)
    legend = [f"{SHORT_OF[s]} = {s}" for s in _sources(models) if s in SHORT_OF]
    if legend:
        state.out.print(f"Sources: {', '.join(legend)}", markup=False)
    print_labelled(state.out, "Note", data["notes"])


def _quiet(state: AppState) -> AppState:
    """JSON output must stay clean: no progress bars."""
    return replace(state, quiet=True)


app.command("rm", rich_help_panel="Reward models")(rm)

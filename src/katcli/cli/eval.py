"""`kat eval …`: the evaluation command group; `kat eval rm` compares reward models on one held-out set.

Commands are thin: they call `katcli.pipeline.eval_rm` and render its result as a side-by-side Rich table (overall,
per source, per density quintile, each with a Wilson 95% interval) or as JSON (`--json`, schema `kat.eval.rm/1`).
This module knows nothing about how models are scored.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.render import print_labelled, run_reported
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
    data = run_reported(state, as_json, lambda report: run_eval_rm(
        workspace_of(ctx), checkpoints, device=device, batch_size=batch_size, threads=threads, force=force,
        progress=report,
    ))
    if data is None:
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
    for label, n, accs in _groups(models):
        cells = [_cell(a) for a in accs]
        if two:
            diff = "–" if None in accs or not accs[0]["n"] else f"{accs[1]['accuracy'] - accs[0]['accuracy']:+.3f}"
            cells.append(diff)
        table.add_row(label, n, *cells)
    state.out.print(table)
    print_labelled(state.out, "Note", data["notes"])


app.command("rm", rich_help_panel="Reward models")(rm)


def _register_policy() -> None:
    # The policy command lives in its own module (cli/eval_policy.py); only its registration is here.
    from katcli.cli.eval_policy import policy

    app.command("policy", rich_help_panel="Policies")(policy)


_register_policy()

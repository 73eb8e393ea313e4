"""`kat status`: render the workspace status computed by `katcli.pipeline.status` (table or JSON)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from katcli.cli.render import human_size
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.pipeline.status import StageStatus, compute_status

_STATE_STYLE = {"ok": "green", "missing": "dim", "modified": "red", "stale": "yellow"}


def _rows_or_shape(row: StageStatus) -> str:
    parts = []
    for a in row.artifacts:
        if a.rows is not None:
            parts.append(f"{a.rows:,} rows")
        elif a.shape is not None:
            parts.append("×".join(str(d) for d in a.shape))
    return ", ".join(parts[:2]) or "–"


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON (schema kat.status/1).")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-hash every artifact instead of trusting the cache.")] = False,
) -> None:
    """Show what the workspace holds, what is stale, and what to run next.

    Example: kat -w ./exp status --verify
    """
    state = state_of(ctx)
    result = compute_status(workspace_of(ctx), verify=verify)
    if as_json:
        state.out.print_json(json.dumps(result.to_json()))
        return
    table = Table(title=f"kat workspace {result.workspace}", title_justify="left")
    for col in ("Stage", "State", "Artifacts", "Rows / shape", "Size", "Last run", "Run next"):
        table.add_column(col, overflow="fold")
    for row in result.stages:
        present = sum(a.exists for a in row.artifacts)
        size = sum(a.size or 0 for a in row.artifacts) if present else None
        last = row.last_run.finished_at.replace("T", " ").replace("+00:00", "Z") if row.last_run else "never"
        if row.last_run and row.last_run.forced:
            last += " (forced)"
        table.add_row(
            row.title,
            f"[{_STATE_STYLE.get(row.state, '')}]{row.state}[/]",
            f"{present}/{len(row.artifacts)}" if row.artifacts else "–",
            _rows_or_shape(row),
            human_size(size),
            last,
            "" if row.state == "ok" else row.command,
        )
    state.out.print(table)
    for row in result.stages:
        if row.state in ("modified", "stale"):
            state.out.print(f"  {row.title}: {'; '.join(row.reasons)}", markup=False)
    if result.next_command:
        state.out.print(f"Next: {result.next_command}", markup=False)
    else:
        state.out.print("Everything is up to date.", markup=False)

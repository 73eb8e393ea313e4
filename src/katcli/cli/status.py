"""`kat status`: render the workspace status computed by `katcli.pipeline.status` (table or JSON)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from katcli.cli.render import human_size, print_labelled
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.pipeline.status import StageStatus, compute_status

_STATE_STYLE = {"ok": "green", "missing": "dim", "modified": "red", "stale": "yellow"}


def _rows_or_shape(row: StageStatus) -> str:
    """The most telling size: a matrix shape if the stage wrote one, else its first row count."""
    shapes = [a.shape for a in row.artifacts if a.shape is not None and len(a.shape) > 1]
    if shapes:
        return "×".join(str(d) for d in shapes[0])
    rows = [a.rows for a in row.artifacts if a.rows is not None]
    return f"{rows[0]:,}" if rows else "–"


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
    cells = []
    for row in result.stages:
        present = sum(a.exists for a in row.artifacts)
        size = sum(a.size or 0 for a in row.artifacts) if present else None
        # Manifest times are UTC ISO-8601; month-day hour:minute is enough to tell runs apart at a glance.
        last = row.last_run.finished_at[5:16].replace("T", " ") if row.last_run else "never"
        cells.append((
            row.title, row.state, f"{present}/{len(row.artifacts)}" if row.artifacts else "–", _rows_or_shape(row),
            human_size(size), last,
        ))
    table = Table(title=f"kat workspace {result.workspace}", title_justify="left")
    # Every column but Stage keeps its widest cell whole; a long title (`Policy eval (grpo-density)`) is what wraps
    # when 80 columns are too few, instead of `missi…` and `12-01 16:…`.
    table.add_column("Stage", overflow="fold")
    for i, (head, justify) in enumerate(
        [("State", "left"), ("Files", "right"), ("Rows", "right"), ("Size", "right"), ("Updated", "left")], start=1
    ):
        widest = max([len(head)] + [len(c[i]) for c in cells])
        table.add_column(head, justify=justify, no_wrap=True, min_width=widest)  # type: ignore[arg-type]
    for title, row_state, *rest in cells:
        table.add_row(title, f"[{_STATE_STYLE.get(row_state, '')}]{row_state}[/]", *rest)
    state.out.print(table)
    # Said under the table, not in the Updated column: at 80 columns every column is needed whole.
    print_labelled(state.out, "Forced", [f"{row.title} ran with --force over modified or stale inputs"
                                         for row in result.stages if row.last_run and row.last_run.forced])
    print_labelled(state.out, "Base model", [f"{row.title}: {row.base_model}" for row in result.stages if row.base_model])
    for row in result.stages:
        if row.state in ("modified", "stale"):
            state.out.print(f"  {row.title}: {'; '.join(row.reasons)}", markup=False)
    # Commands are listed under the table, not in a column: a narrow terminal squeezed that column to nothing.
    todo = [row for row in result.stages if row.state != "ok"]
    if todo:
        state.out.print("Run next:", markup=False)
        # Aligned on the longest command that fits the terminal with its reason; a longer one is printed whole,
        # unpadded, rather than widening every line past the edge.
        # One line per command: one `kat eval policy` run records a row per policy, all with the same command.
        groups: dict[str, list[str]] = {}
        for row in todo:
            groups.setdefault(row.command, []).append(f"{row.title}: {row.state}")
        lines = [(command, "; ".join(why)) for command, why in groups.items()]
        width = max((len(c) for c, why in lines if len(c) + len(why) + 6 <= state.out.width), default=0)
        for command, why in lines:  # soft_wrap: a command is never broken across lines
            state.out.print(f"  {command:<{width}}  ({why})", markup=False, soft_wrap=True)
    if result.leftovers:
        size = human_size(sum(f.size for f in result.leftovers))
        state.out.print(
            f"Leftovers: {len(result.leftovers)} temp file(s) from killed runs ({size}), e.g. "
            f"{result.leftovers[0].path}; the next writing command removes them.",
            markup=False,
        )
    for u in result.unrecorded:
        what = (f"a resumable checkpoint of step {u.resumable_step} (kept until that run is resumed with --resume "
                "or re-run)" if u.resumable_step is not None else "the next writing command removes them")
        state.out.print(
            f"Unrecorded: {len(u.files)} file(s) in {u.folder}/ ({human_size(u.size)}) from a run that did not "
            f"finish, e.g. {u.files[0]}: {what}.",
            markup=False,
        )
    if result.next_command:
        state.out.print(f"Next: {result.next_command}", markup=False)
    else:
        state.out.print("Everything is up to date.", markup=False)

"""Everything the CLI shows: consoles, the error message format, progress bars, summary tables.

Domain code reports progress through a plain callback (`katcli.progress.ProgressFn`); this module turns
those calls into Rich progress bars with counts and rates. It knows nothing about what is computed.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from katcli.errors import KatError, raise_if_interrupted

# Set while `kat quickstart` runs one of its steps: the step's boundary puts what a Ctrl-C interrupted here instead
# of printing its own line, so the whole command still ends with exactly one line (which names the quickstart step).
QUICKSTART_STEP_INTERRUPT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "kat_quickstart_step_interrupt", default=None
)
from katcli.progress import ProgressFn, no_progress


@dataclass
class AppState:
    """Global options, resolved once per invocation and handed to every command via `ctx.obj`."""

    workspace: str | None = None
    verbose: bool = False
    quiet: bool = False
    out: Console = field(default_factory=lambda: make_console(stderr=False))
    err: Console = field(default_factory=lambda: make_console(stderr=True))


def make_console(*, stderr: bool) -> Console:
    # soft_wrap keeps messages on one line so they stay greppable and testable at any width.
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=True)


def print_error(err: Console, exc: KatError) -> None:
    err.print(f"Error: {exc.located()}", markup=False)
    if exc.hint:
        err.print(f"Hint: {exc.hint}", markup=False)


def print_labelled(out: Console, label: str, lines: Iterable[str]) -> None:
    """One `<label>: <line>` per line (e.g. `Forced:` for overridden upstream checks, `Note:` for caveats)."""
    for line in lines:
        out.print(f"{label}: {line}", markup=False)


class _RateColumn(TextColumn):
    """Items per second, with units that stay readable from 0.1/s to 1M/s."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[override]
        from rich.text import Text

        speed = task.finished_speed or task.speed
        if not speed and task.elapsed and task.completed:
            speed = task.completed / task.elapsed  # short tasks finish before Rich samples a speed
        if not speed:
            return Text("–/s", style="progress.data.speed")
        for unit, scale in (("M", 1e6), ("k", 1e3)):
            if speed >= scale:
                return Text(f"{speed / scale:.1f}{unit}/s", style="progress.data.speed")
        return Text(f"{speed:.1f}/s", style="progress.data.speed")


@contextlib.contextmanager
def progress(state: AppState) -> Iterator[ProgressFn]:
    """A `ProgressFn` that draws one Rich bar per task name (nothing with --quiet)."""
    if state.quiet:
        yield no_progress
        return
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=state.err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def report(task: str, done: int, total: int | None = None) -> None:
        raise_if_interrupted()  # progress is the safe point where a swallowed Ctrl-C takes effect
        if not tasks:
            bars.start()  # lazily: a run that fails before any progress leaves no empty display behind
        if task not in tasks:
            tasks[task] = bars.add_task(task, total=total)
        bars.update(tasks[task], completed=done, total=total)

    try:
        yield report
    finally:
        if tasks:
            bars.stop()


def run_reported(state: AppState, as_json: bool, run: Callable[[ProgressFn], Any]) -> dict[str, Any] | None:
    """Run `run(progress)` and print its result's JSON (`--json`: no progress bars, so the output stays clean);
    returns the data for the caller to render as tables, or None when there is nothing more to show."""
    with progress(replace(state, quiet=True) if as_json else state) as report:
        data = run(report).to_json()
    if as_json:
        state.out.print_json(json.dumps(data))
        return None
    return None if state.quiet else data


def sampling_label(weighting: str) -> str:
    """How a run drew its training items: `uniform`, or `density-aware (per-prompt|per-pair)` — never the bare
    pair-weighting, which reads as "uniform over prompts"."""
    return weighting if weighting == "uniform" else f"density-aware ({weighting})"


def num(value: Any, spec: str) -> str:
    """A number as `format(value, spec)`, or `–` where there is none (a run that recorded null or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return format(value, spec)


def human_size(n: int | None) -> str:
    if n is None:
        return "–"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def open_in_browser(state: AppState, page) -> None:
    """`--open`: show a written page in the default browser, or say where it is when there is none."""
    import webbrowser

    if not webbrowser.open(page.as_uri()):
        state.err.print(f"Could not open a browser; open {page} yourself.", markup=False)

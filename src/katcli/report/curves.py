"""Training curves from `metrics.jsonl`: one figure per kind of run, one panel per metric, one line per run.

Every training stage writes the same log: one JSON object per line with an integer `"step"` and named numbers
(`"loss"`, `"accuracy"`, `"kl"`, ...); evaluation lines carry `"type": "eval"`. A panel appears only when some run
logged its metric. Each run is drawn thin per step and thick as the mean of up to `WINDOWS` equal step windows;
the table under the figure holds exactly those window means, so the numbers behind every thick line are there.
Evaluation values are drawn as squares. This module knows the log format, not which stage wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from katcli.errors import KatError
from katcli.report.context import ReportContext
from katcli.report.document import Figure, fmt_sig, table
from katcli.report.plotting import colour
from katcli.workspace.jsonl import iter_json_lines

WINDOWS = 10


@dataclass(frozen=True)
class Metric:
    label: str
    keys: tuple[str, ...]  # the first of these present in a run's step lines is drawn
    eval_paths: tuple[tuple[str, ...], ...] = ()  # where the same quantity sits in eval lines


@dataclass
class RunLog:
    name: str
    rel: str
    steps: list[dict[str, Any]]
    evals: list[dict[str, Any]]

    def key_for(self, metric: Metric) -> str | None:
        return next((k for k in metric.keys if any(_number(s.get(k)) for s in self.steps)), None)

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [(int(s["step"]), float(s[key])) for s in self.steps if _number(s.get(key))]
        return np.array([p[0] for p in pts], dtype=np.int64), np.array([p[1] for p in pts], dtype=np.float64)

    def eval_series(self, metric: Metric) -> tuple[list[int], list[float]]:
        steps, values = [], []
        for e in self.evals:
            for path in metric.eval_paths:
                v: Any = e
                for part in path:
                    v = v.get(part) if isinstance(v, dict) else None
                if _number(v):
                    steps.append(int(e["step"]))
                    values.append(float(v))
                    break
        return steps, values

    def total(self, key: str) -> int:
        """Sum of an integer per-step count such as `"pairs"` (0 when not logged)."""
        return sum(int(s[key]) for s in self.steps if isinstance(s.get(key), int))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_log(ctx: ReportContext, rel: str, name: str) -> RunLog:
    steps, evals = [], []
    hint = "re-run the training command that wrote it"
    for lineno, row in iter_json_lines(ctx.read(rel), hint=hint, name="metrics log"):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise KatError('a metrics line must be an object with an integer "step"', file=str(ctx.root / rel),
                           line=lineno, hint=hint)
        (evals if row.get("type") == "eval" else steps).append(row)
    return RunLog(name, rel, steps, evals)


def read_logs(ctx: ReportContext, parent: str, marker: str = "metrics.jsonl") -> list[RunLog]:
    """Every `parent/<name>/metrics.jsonl` with at least one line, by name."""
    logs = [read_log(ctx, f"{parent}/{name}/{marker}", name) for name in ctx.run_dirs(parent, marker)]
    return [log for log in logs if log.steps or log.evals]


def windows(steps: np.ndarray, values: np.ndarray, n: int = WINDOWS) -> list[tuple[int, int, float]]:
    """(first step, last step, mean value) of up to `n` consecutive, equally sized groups of points."""
    return [
        (int(s[0]), int(s[-1]), float(v.mean()))
        for s, v in zip(np.array_split(steps, min(n, len(steps))), np.array_split(values, min(n, len(steps))))
        if len(s)
    ] if len(steps) else []


def curves_figure(
    name: str, title: str, logs: Sequence[RunLog], metrics: Sequence[Metric], *, unit: str | None = None
) -> Figure | None:
    """Panels for the metrics some run logged; None when none did. `unit` is the per-step count key ("pairs")."""
    shown = [(m, [(log, log.key_for(m)) for log in logs]) for m in metrics]
    shown = [(m, [(log, k) for log, k in runs if k is not None]) for m, runs in shown]
    shown = [(m, runs) for m, runs in shown if runs]
    if not shown:
        return None

    def draw(fig) -> None:
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        for ax, (metric, runs) in zip(axes, shown):
            for log, key in runs:
                c = colour(logs.index(log))
                x, y = log.series(key)
                ax.plot(x, y, color=c, alpha=0.3, linewidth=0.8)
                win = windows(x, y)
                ax.plot([(a + b) / 2 for a, b, _ in win], [v for _, _, v in win], color=c, linewidth=2,
                        marker="o", markersize=3, label=log.name)
                ex, ey = log.eval_series(metric)
                if ex:
                    ax.plot(ex, ey, linestyle="none", marker="s", markersize=6, markeredgecolor="black",
                            color=c, label=f"{log.name} (held-out)")
            ax.set_title(metric.label)
            ax.set_xlabel("step")
        axes[0].legend(fontsize=7)

    rows = []
    for log in logs:
        keyed = [(m, log.key_for(m)) for m, _ in shown]
        series = [log.series(k) if k else (np.array([], dtype=np.int64), np.array([])) for _, k in keyed]
        ref = max(range(len(series)), key=lambda i: len(series[i][0]))
        steps_ref = series[ref][0]
        for a, b, _ in windows(steps_ref, series[ref][1]):
            cells = [log.name, f"{a}–{b}" if a != b else str(a)]
            for x, y in series:
                sel = (x >= a) & (x <= b)
                cells.append(fmt_sig(float(y[sel].mean())) if sel.any() else "–")
            rows.append(cells)
        held: dict[int, list[str]] = {}
        for k, (metric, _) in enumerate(keyed):
            for s, v in zip(*log.eval_series(metric)):
                held.setdefault(s, ["–"] * len(shown))[k] = fmt_sig(v)
        rows += [[log.name, f"{s} (held-out)", *cells] for s, cells in sorted(held.items())]
    parts = []
    for log in logs:
        n_steps = len(log.steps)
        items = log.total(unit) if unit else 0
        parts.append(f"{log.name}: {n_steps:,} steps" + (f", {items:,} {unit} sampled" if items else ""))
    labels = [m.label for m, _ in shown]
    what = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
    evaluated = any(log.eval_series(m)[0] for log in logs for m, _ in shown)
    caption = (
        f"{what[0].upper()}{what[1:]} per training step for {len(logs)} run{'s' if len(logs) != 1 else ''} "
        f"({'; '.join(parts)}); thick lines and the table are means over up to {WINDOWS} equal step windows"
        f"{', squares are held-out evaluations' if evaluated else ''}."
    )
    columns = ["Run", "Steps", *(m.label for m, _ in shown)]
    return Figure(name, title, caption, draw, table(columns, rows), size=(3.4 * len(shown) + 0.6, 3.4))

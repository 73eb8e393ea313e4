"""Experiment trackers (`--report-to`): the one interface the training loop logs through, and the names it logs.

The loop (`katcli.train.loop`) calls a `Trackers` object at four points and nowhere else: `start` (the run's
identity, configuration, recorded command and versions), `log_step` (each `metrics.jsonl` training line),
`log_eval` (each evaluation) and `finish` (the final summary). Objectives never see it. Only rank 0 has one.

**Names.** What TRL's runs show in the same trackers: a training metric is `train/` + TRL's name for it
(`train/loss`, `train/learning_rate`, `train/grad_norm`, `train/rewards/accuracies`, `train/kl`, `train/reward`,
`train/completions/mean_length`, …; kat's `lr` → `learning_rate`, the reward model's `reward_mean` →
`mean_reward`, DPO's `nll` → `nll_loss`) or kat's own name where TRL has none (`train/pad_fraction`,
`train/bt_loss`; GRPO's per-quintile reward → `train/q1_commonest/reward`, `…/reward_std`). An evaluation
metric is `eval/[GROUP/]MEASURE`: GROUP is absent for the whole held-out set, `q1_commonest`, `q2` …
`q5_rarest` for a density quintile, `source/SRC` for a source; MEASURE is the report's
field (`accuracy`, `accuracy_ci95_low`/`_high`, `loss`, `margin`, `perplexity`, `greedy_reward`, …; `nll` and
`mean_loss` → `loss`, `mean_margin` → `margin`). The final summary is `summary/…`.

**Failures.** A backend that raises is warned about once, turned off, and the run goes on: nothing a tracker does
can change a kat file. **Resume.** Each backend says the last step its tracked run already holds; steps up to it are
not sent again, and `metrics.jsonl` lines the tracked run lacks (a tracker added at `--resume`) are sent first.

This module knows names, the registry of backends and their extras; the backends are
`katcli.train.tracker_backends` (`make_backend`; imported only when one is asked for). It imports no torch.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from katcli.errors import ConfigError, KatError

NONE = "none"
TENSORBOARD, WANDB, TRACKIO, MLFLOW = "tensorboard", "wandb", "trackio", "mlflow"
BACKENDS = (TENSORBOARD, WANDB, TRACKIO, MLFLOW)
# The module each backend imports, i.e. what its extra (`pip install 'katcli[NAME]'`) installs.
MODULES = {TENSORBOARD: "tensorboard", WANDB: "wandb", TRACKIO: "trackio", MLFLOW: "mlflow"}
TRACKING_DIR = "tracking"  # under the workspace: TensorBoard, Trackio and MLflow's file store, W&B's offline runs

# kat's metric name → TRL's, where they differ (the rest keep their names under `train/`).
TRL_NAMES = {"lr": "learning_rate", "reward_mean": "mean_reward", "nll": "nll_loss"}
EVAL_RENAMES = {"nll": "loss", "mean_loss": "loss", "mean_margin": "margin"}
_NOT_METRICS = {"step", "type"}
_QUINTILE_KEY = re.compile(r"^(\w+)/q([1-5])_(mean|std)$")
_EVAL_SKIP = {"n", "correct", "tokens", "quintile_weight_ranges", "ties", "step", "type"}

Warn = Callable[[str], None]


def parse_report_to(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """`--report-to` values (repeated and/or comma-separated) as backend names in the order given; `none` → ()."""
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    names = [part.strip().lower() for item in items for part in str(item).split(",") if part.strip()]
    unknown = [n for n in names if n not in (NONE, *BACKENDS)]
    if unknown:
        raise ConfigError(f"--report-to {unknown[0]}: not a tracker (choose from {', '.join((NONE, *BACKENDS))})")
    if NONE in names and len(set(names)) > 1:
        raise ConfigError("--report-to none turns tracking off: it cannot be combined with a tracker")
    return tuple(dict.fromkeys(n for n in names if n != NONE))


def check_installed(names: Sequence[str]) -> None:
    """Refuse a tracker whose package is not installed, naming the extra that installs it."""
    for name in names:
        if importlib.util.find_spec(MODULES[name]) is None:
            package = "mlflow-skinny" if name == MLFLOW else MODULES[name]
            raise KatError(
                f"--report-to {name} needs the {package} package, which is not installed",
                hint=f"pip install 'katcli[{name}]' (or 'katcli[trackers]' for all four), or drop --report-to {name}",
            )


# ---------------------------------------------------------------------------------------------------- names


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def quintile_slug(q: int, n: int = 5) -> str:
    """`q1_commonest`, `q2`, …, `q5_rarest`: how tracker names spell density quintile `q` (0-based)."""
    return f"q{q + 1}" + ("_commonest" if q == 0 else "_rarest" if q == n - 1 else "")


def _train_name(key: str) -> str:
    # GRPO's per-quintile rewards (`reward/q1_mean`) follow the quintile scheme (`train/q1_commonest/reward`):
    # `train/reward` is a metric too, and a name may not be both a metric and a folder (MLflow's file store).
    m = _QUINTILE_KEY.match(key)
    if m is not None:
        return f"train/{quintile_slug(int(m.group(2)) - 1)}/{m.group(1)}" + ("" if m.group(3) == "mean" else "_std")
    return "train/" + TRL_NAMES.get(key, key)


def step_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """A `metrics.jsonl` training line as tracker metrics (`train/…`, TRL's names); nulls are left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        number = _number(value)
        if key not in _NOT_METRICS and number is not None:
            out[_train_name(key)] = number
    return out


def _group_metrics(prefix: str, group: Mapping[str, Any], out: dict[str, float]) -> None:
    for key, value in group.items():
        if key in _EVAL_SKIP:
            continue
        if key == "ci95" and isinstance(value, (list, tuple)) and len(value) == 2:
            for end, v in zip(("low", "high"), value):
                if _number(v) is not None:
                    out[f"{prefix}accuracy_ci95_{end}"] = float(v)
            continue
        number = _number(value)
        if number is not None:
            out[prefix + EVAL_RENAMES.get(key, key)] = number


def eval_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """An evaluation report (`to_json()`) as tracker metrics: `eval/[GROUP/]MEASURE` (see the module docstring)."""
    out: dict[str, float] = {}
    overall = report.get("overall")
    if isinstance(overall, Mapping):
        _group_metrics("eval/", overall, out)
    _group_metrics("eval/", {k: v for k, v in report.items() if not isinstance(v, (Mapping, list))}, out)
    for src, group in (report.get("by_source") or {}).items():
        if isinstance(group, Mapping):
            _group_metrics(f"eval/source/{src}/", group, out)
    quintiles = report.get("by_quintile") or []
    for q, group in enumerate(quintiles):
        if isinstance(group, Mapping):
            _group_metrics(f"eval/{quintile_slug(q, len(quintiles))}/", group, out)
    return out


# ---------------------------------------------------------------------------------------------------- interface


@dataclass(frozen=True)
class TrackedRun:
    """Who the tracked run is and what it starts from: the same for every backend."""

    name: str  # the kat run ("rm/density-s1"): the tracker's run name
    group: str  # the arm ("rm/density-aware"): seeds of one arm share it
    tags: tuple[str, ...]  # ("density-aware", "rm")
    project: str  # the workspace directory's name: one workspace, one project
    root: Path  # <workspace>/tracking
    config: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    resume_step: int | None = None  # --resume: the checkpoint step it continues after


class Backend(Protocol):
    name: str

    def start(self, run: TrackedRun) -> int:
        """Open (or, on resume, reopen) the tracked run; return the last step it already holds (0: none)."""
        ...

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None: ...

    def where(self) -> str:
        """Where to look: a workspace-relative directory, a file store or a URL."""
        ...


class Trackers:
    """The backends of one run behind one guard: each call goes to every backend still on; a failure turns it off."""

    def __init__(self, backends: Sequence[Backend], run: TrackedRun, *, warn: Warn, note: Warn) -> None:
        self.run = run
        self.backends = list(backends)
        self.warn = warn
        self.note = note
        self.failed: list[str] = []
        self._held: dict[str, int] = {}  # backend → last step its tracked run already holds

    def _call(self, backend: Backend, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # a tracker never stops training; KeyboardInterrupt still does
            self.backends = [b for b in self.backends if b is not backend]
            self.failed.append(backend.name)
            detail = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
            self.warn(f"{backend.name} logging failed ({what}: {detail}); it is off for the rest of this run, "
                      "training goes on and kat's own files are unaffected")
            return None

    def start(self, history: Sequence[Mapping[str, Any]] = ()) -> None:
        """Open every backend; send each the `metrics.jsonl` lines (a resumed run's) its tracked run lacks."""
        for b in list(self.backends):
            held = self._call(b, "start", lambda b=b: b.start(self.run))
            for line in getattr(b, "notes", ()):
                self.note(line)
            if b in self.backends:
                self._held[b.name] = int(held or 0)
        for row in history:
            if row.get("type") == "eval":
                self._send(int(row["step"]), eval_metrics(row))
            else:
                self._send(int(row["step"]), step_metrics(row))

    def _send(self, step: int, metrics: Mapping[str, float]) -> None:
        if not metrics:
            return
        for b in list(self.backends):
            if step > self._held.get(b.name, 0):
                self._call(b, f"step {step}", lambda b=b: b.log(metrics, step))

    def log_step(self, record: Mapping[str, Any]) -> None:
        self._send(int(record["step"]), step_metrics(record))

    def log_eval(self, step: int, report: Mapping[str, Any]) -> None:
        self._send(step, eval_metrics(report))

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None:
        for b in list(self.backends):
            self._call(b, "finish", lambda b=b: b.finish(summary, ok=ok))

    def where(self) -> list[tuple[str, str]]:
        """(backend, where to look) for every backend that is still on."""
        out = []
        for b in list(self.backends):
            place = self._call(b, "where", b.where)
            if place is not None:
                out.append((b.name, place))
        return out


def summary_metrics(*, step: int, tokens_per_s: float, pad_fraction: float, train_seconds: float,
                    report: Mapping[str, Any] | None) -> dict[str, float]:
    """The final summary: `summary/…` throughput and the last evaluation's metrics (`eval/…` → `summary/eval/…`)."""
    out = {"summary/step": float(step), "summary/tokens_per_s": round(tokens_per_s, 1),
           "summary/pad_fraction": round(pad_fraction, 6), "summary/train_seconds": round(train_seconds, 3)}
    if report is not None:
        out.update({"summary/" + k: v for k, v in eval_metrics(report).items()})
    return out

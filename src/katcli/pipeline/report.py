"""The `report` stage: every section whose inputs exist, as `reports/report.html`, `report.md` and figure files.

It reads whatever the workspace holds, fresh or not (a report shows stale runs too; it does not refuse them), and
records every file it read as an input, so `kat status` marks the report stale once anything it shows changes.
Freshness comes from `kat status` (`compute_status`), held-out accuracy from `kat eval rm` (`run_eval_rm`, once
per set of reward models that share a held-out split), so the report's numbers are those commands' numbers. Files
are written through `StageRun` (temp files, moved into place together, then the manifest); figure files an
earlier report wrote into the same directory and this one no longer has are removed afterwards. The work itself
is `katcli.report`; this module wires the workspace, the evaluations and the manifest, and knows nothing about
Typer or Rich.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from katcli import __version__
from katcli.errors import ConfigError, KatError
from katcli.pipeline.eval_rm import run_eval_rm
from katcli.pipeline.quickstart import Step
from katcli.pipeline.stage import StageRun
from katcli.pipeline.status import compute_status
from katcli.progress import ProgressFn, no_progress
from katcli.report.build import HTML_FILE, MARKDOWN_FILE, build_report, render_report
from katcli.report.context import Evaluations, ReportContext
from katcli.workspace import RunRecord, Workspace
from katcli.workspace import paths as P

STAGE = "report"
#: What `kat quickstart` runs to finish with the report.
QUICKSTART_STEP = Step("The report: every figure and its numbers in one page", ("report",))


@dataclass(frozen=True)
class ReportConfig:
    out: str = P.REPORTS_DIR  # a directory inside the workspace (relative to its root, or absolute)
    device: str = "auto"  # for scoring reward models, as `kat eval rm --device`
    batch_size: int = 32
    threads: int | None = None
    force: bool = False  # evaluate reward models whose inputs are stale, as `kat eval rm --force`

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("--threads must be at least 1")

    def params(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads", "force")}


@dataclass(frozen=True)
class ReportResult:
    out_dir: Path
    html_path: Path
    markdown_path: Path
    files: list[str]  # names inside out_dir
    sections: list[str]
    figures: int
    html_bytes: int
    notes: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def out_dir_rel(ws: Workspace, out: str) -> str:
    """The workspace-relative directory `--out` names; it must lie inside the workspace, apart from kat's own."""
    path = Path(out).expanduser()
    try:
        rel = ws.rel(path if path.is_absolute() else ws.root / path)
    except KatError:
        raise ConfigError(
            f"--out {out} is outside the workspace {ws.root}",
            hint=f"pass a directory inside the workspace (default: {P.REPORTS_DIR}/) and copy the files from there",
        ) from None
    shown = out or "''"
    if rel in ("", ".") or rel.split("/")[0] == P.STATE_DIR:
        raise ConfigError(f"--out {shown} must be a directory of its own inside the workspace",
                          hint=f"use the default, --out {P.REPORTS_DIR}")
    if ws.abs(rel).exists() and not ws.abs(rel).is_dir():
        raise ConfigError(f"--out {shown} is a file, not a directory", hint=f"use the default, --out {P.REPORTS_DIR}")
    # Another stage's directory would mix the report's files with its outputs, and that stage's next run
    # (which replaces its files) could take the report's with them.
    from katcli.workspace import Manifest

    for run in Manifest.load(ws.manifest_path).runs.values():
        held = next((o.path for o in run.outputs if o.path.startswith(rel + "/")), None)
        if run.stage != STAGE and held is not None:
            raise ConfigError(
                f"--out {shown} holds {held}, an output of `{run.command}`",
                hint=f"pass a directory of its own for the report (default: --out {P.REPORTS_DIR})",
            )
    return rel


def _rm_evaluator(ws: Workspace, run: StageRun, cfg: ReportConfig, runs: dict[str, RunRecord],
                  progress: ProgressFn) -> Callable[[], Evaluations]:
    """What `kat eval rm NAME... --json` gives for every recorded reward model, one call per held-out split."""

    def evaluate() -> Evaluations:
        # Reward models, then DPO policies read as implicit reward models (`kat eval rm` scores both); uniform first
        # within each, so "A vs B" and the Δ column read density-aware minus uniform, as in `kat eval rm`.
        scored = {r.key.split("/", 1)[1]: r for r in runs.values() if r.stage == "rm"}
        scored.update({r.key: r for r in runs.values() if r.stage == "dpo"})
        if not scored:
            return Evaluations([])
        from katcli.model.run_meta import POLICY_KIND, RM_KIND
        from katcli.train.run_dir import read_run  # torch: only when there are models

        groups: dict[tuple, list[str]] = {}
        notes: list[str] = []
        order = sorted(scored, key=lambda n: (n.startswith("dpo/"), bool(scored[n].params.get("density_aware")), n))
        for name in order:
            is_dpo = name.startswith("dpo/")
            directory = ws.abs(f"{P.DPO_DIR}/{name[4:]}" if is_dpo else f"{P.RM_DIR}/{name}")
            what = "DPO policy" if is_dpo else "reward model"
            try:
                _, meta = read_run(directory, (POLICY_KIND if is_dpo else RM_KIND,), hint="re-train it")
            except KatError as exc:
                notes.append(f"{what} {name} not evaluated: {exc.located()}")
                continue
            if meta.split is None:
                notes.append(f"{what} {name} not evaluated: its meta file records no held-out settings")
                continue
            groups.setdefault(meta.split.spec, []).append(name)
        rm_runs = scored
        results = []
        for names in groups.values():
            try:
                result = run_eval_rm(ws, names, device=cfg.device, batch_size=cfg.batch_size, threads=cfg.threads,
                                     force=cfg.force, progress=progress)
            except KatError as exc:
                hint = f" ({exc.hint})" if exc.hint else ""
                notes.append(f"{' '.join(names)} not evaluated: {exc.located()}{hint}")
                continue
            for name in names:
                for o in rm_runs[name].outputs:
                    if ws.abs(o.path).is_file():
                        run.read(o.path)
            for rel in (P.PAIRS, P.DENSITY_WEIGHTS, P.EMBED_IDS):
                if ws.abs(rel).is_file():
                    run.read(rel)
            results.append(result.to_json())
        return Evaluations(results, notes)

    return evaluate


def run_report(
    ws: Workspace, cfg: ReportConfig = ReportConfig(), *, progress: ProgressFn = no_progress
) -> ReportResult:
    """Build the report from the workspace as it is and record it in the manifest."""
    cfg.validate()
    out_rel = out_dir_rel(ws, cfg.out)
    with StageRun(ws, STAGE, params={**cfg.params(), "out": out_rel}, force=cfg.force) as run:
        manifest = run.judge.manifest
        previous = manifest.runs.get(STAGE)
        runs = {k: r for k, r in manifest.runs.items() if r.stage != STAGE}
        if not runs:
            raise KatError("nothing to report: the workspace records no runs yet",
                           hint="run `kat pairs download` first, or `kat quickstart` for the whole experiment")
        status = compute_status(ws).to_json()
        status["stages"] = [s for s in status["stages"] if s["stage"] != STAGE]
        ctx = ReportContext(
            root=ws.root, read=run.read, runs=runs, status=status, kat_version=__version__,
            evaluate_rm=_rm_evaluator(ws, run, cfg, runs, progress), progress=progress,
        )
        built = render_report(build_report(ctx), progress)
        for name, data in built.files.items():
            run.output(f"{out_rel}/{name}").write_bytes(data)
        run.stats.update({"sections": built.section_titles, "figures": len(built.report.figures)})
    written = {f"{out_rel}/{name}" for name in built.files}
    removed = []
    for o in previous.outputs if previous is not None else []:
        if o.path.startswith(f"{out_rel}/") and o.path not in written and ws.abs(o.path).is_file():
            ws.abs(o.path).unlink()
            removed.append(o.path)
    return ReportResult(
        out_dir=ws.abs(out_rel),
        html_path=ws.abs(f"{out_rel}/{HTML_FILE}"),
        markdown_path=ws.abs(f"{out_rel}/{MARKDOWN_FILE}"),
        files=list(built.files),
        sections=built.section_titles,
        figures=len(built.report.figures),
        html_bytes=len(built.files[HTML_FILE]),
        notes=list(ctx.notes),
        removed=removed,
    )

"""`kat status` as plain data: one row per stage in pipeline order, then the next command to run.

The result is a tree of dataclasses with a stable JSON form (`to_json`, schema `kat.status/1`,
documented in the README); the CLI renders it. Computing status never writes an artifact (it may
refresh the hash cache) and never takes the workspace lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from katcli.pipeline import registry
from katcli.pipeline.upstream import MISSING, MODIFIED, OK, Judge, load_judge
from katcli.workspace import RunRecord, Workspace
from katcli.pipeline.unrecorded import find_unrecorded
from katcli.workspace.leftovers import find_leftovers

STATUS_SCHEMA = "kat.status/1"


@dataclass
class ArtifactStatus:
    path: str
    exists: bool
    state: str
    size: int | None = None
    sha256: str | None = None
    rows: int | None = None
    shape: list[int] | None = None


@dataclass
class LastRun:
    command: str
    started_at: str
    finished_at: str
    kat_version: str
    forced: bool


@dataclass
class StageStatus:
    key: str
    stage: str
    title: str
    state: str
    command: str  # what (re)produces this row's artifacts: the recorded command line, minus `-w DIR`
    reasons: list[str] = field(default_factory=list)
    artifacts: list[ArtifactStatus] = field(default_factory=list)
    last_run: LastRun | None = None
    base_model: str | None = None  # a Hugging Face backbone's starting model (`--init hf:…`), as recorded


@dataclass
class LeftoverStatus:
    path: str  # workspace-relative
    size: int


@dataclass
class UnrecordedStatus:
    folder: str  # workspace-relative run folder
    files: list[str]
    size: int
    resumable_step: int | None  # kept for `--resume`; None: the next writing command removes the files


@dataclass
class WorkspaceStatus:
    workspace: str
    stages: list[StageStatus]
    next_command: str | None
    leftovers: list[LeftoverStatus] = field(default_factory=list)  # temp files of killed runs
    # Files unfinished training runs left under ordinary names (`katcli.pipeline.unrecorded`), per run folder.
    unrecorded: list[UnrecordedStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"schema": STATUS_SCHEMA, **asdict(self)}


def _artifact(judge: Judge, rec_path: str, recorded_sha: str | None, rows, shape) -> ArtifactStatus:
    path = judge.ws.abs(rec_path)
    now = judge.current_sha(rec_path)
    if now is None:
        return ArtifactStatus(rec_path, False, MISSING)
    state = OK if recorded_sha is not None and now == recorded_sha else MODIFIED
    return ArtifactStatus(rec_path, True, state, path.stat().st_size, now, rows, shape)


def _declared_first(spec: registry.StageSpec, name: str | None, path: str) -> tuple[int, str]:
    """Sort key: the registry's declared outputs first, in declared order (the primary artifact leads)."""
    declared = spec.outputs_for(name)
    return (declared.index(path) if path in declared else len(declared), path)


def _from_run(judge: Judge, spec: registry.StageSpec, run: RunRecord, name: str | None) -> StageStatus:
    verdict = judge.verdict(run)
    outputs = sorted(run.outputs, key=lambda o: _declared_first(spec, name, o.path))
    return StageStatus(
        key=run.key,
        stage=spec.name,
        title=spec.title if name is None else f"{spec.title} ({name})",
        state=verdict.state,
        command=registry.rerun_command(run.key, run.command),
        reasons=verdict.reasons,
        artifacts=[_artifact(judge, o.path, o.sha256, o.rows, o.shape) for o in outputs],
        last_run=LastRun(run.command, run.started_at, run.finished_at, run.kat_version, run.forced),
        base_model=run.stats.get("base_model"),
    )


def _never_run(judge: Judge, spec: registry.StageSpec) -> StageStatus:
    artifacts: list[ArtifactStatus] = []
    for out in spec.outputs_for(None):
        if out.endswith("/") or "{name}" in out:
            continue
        artifacts.append(_artifact(judge, out, None, None, None))
    present = [a.path for a in artifacts if a.exists]
    if present:
        return StageStatus(
            spec.name, spec.name, spec.title, MODIFIED, spec.command_for(None),
            [f"{p} is not recorded in the manifest" for p in present], artifacts,
        )
    return StageStatus(
        spec.name, spec.name, spec.title, MISSING, spec.command_for(None), ["never run"], artifacts
    )


def _ready_first(judge: Judge, todo: list[StageStatus]) -> list[StageStatus]:
    """`todo` with the runs that read no other pending run's output first (stable otherwise): re-running one that
    does (dpo/density reads dpo/uniform's reference cache) would leave it stale again once that input is redone."""
    pending = {r.key for r in todo}

    def waits(row: StageStatus) -> bool:
        run = judge.manifest.runs.get(row.key)
        owners = (judge.manifest.owner_of(i.path) for i in (run.inputs if run is not None else ()))
        return any(o is not None and o.key != row.key and o.key in pending for o in owners)

    return sorted(todo, key=waits)


def compute_status(ws: Workspace, *, verify: bool = False) -> WorkspaceStatus:
    judge = load_judge(ws, verify=verify)
    rows: list[StageStatus] = []
    for spec in registry.STAGES:
        runs = [r for r in judge.manifest.runs.values() if r.stage == spec.name]
        if not runs:
            if not spec.optional:
                rows.append(_never_run(judge, spec))
            continue
        for run in sorted(runs, key=lambda r: r.key):
            rows.append(_from_run(judge, spec, run, registry.split_key(run.key)[1]))
    judge.hasher.save()
    # An optional stage is never next while a stage of the main pipeline is pending; once none is, a recorded
    # optional run that is out of date (a stale report, a modified import) is, or "Everything is up to date" lies.
    todo = _ready_first(judge, [r for r in rows if r.state != OK])
    next_command = next((r.command for r in todo if not registry.spec(r.stage).optional), None) or next(
        (r.command for r in todo), None
    )
    leftovers = [LeftoverStatus(ws.rel(f.path), f.size) for f in find_leftovers(ws.root)]
    unrecorded = [UnrecordedStatus(u.folder, u.files, u.size, u.resumable_step)
                  for u in find_unrecorded(ws, judge.manifest)]
    return WorkspaceStatus(str(ws.root), rows, next_command, leftovers, unrecorded)

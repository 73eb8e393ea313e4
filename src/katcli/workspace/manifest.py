"""The checksum manifest: one JSON file at the workspace root recording every stage run.

For each stage key (`pairs`, `prefixes`, `rm/uniform`, ...) it keeps the latest run: stage, parameters,
command line, kat version, start/end time, whether upstream checks were forced, every input
`{path, sha256}` as read and every output `{path, sha256, size, rows|shape}` (and, for a tracked training run,
its optional outputs `{tracker, path}`: where TensorBoard, W&B, Trackio or MLflow wrote, never hashed). An
output path belongs to exactly one run: when a newer run writes a path another run recorded, ownership moves to
the newer run.

Saving is atomic (temp + fsync + os.replace) and happens only after a stage's outputs are in place.
This module knows the file format; it does not judge freshness (that is `katcli.pipeline.upstream`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.workspace.atomic import write_text_atomic

SCHEMA_VERSION = 1


@dataclass
class InputRecord:
    path: str  # workspace-relative key, or an absolute path for inputs from outside the workspace
    sha256: str | None  # None for external inputs too large to hash (e.g. a dataset mirror directory)
    external: bool = False


@dataclass
class ArtifactRecord:
    path: str
    sha256: str
    size: int
    rows: int | None = None
    shape: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "sha256": self.sha256, "size": self.size}
        if self.rows is not None:
            out["rows"] = self.rows
        if self.shape is not None:
            out["shape"] = list(self.shape)
        return out


@dataclass
class RunRecord:
    key: str  # unique per stage instance: "pairs", "rm/uniform"
    stage: str  # the registry stage name: "pairs", "rm"
    command: str
    params: dict[str, Any]
    kat_version: str
    started_at: str
    finished_at: str
    forced: bool = False
    forced_over: list[str] = field(default_factory=list)  # the upstream problems --force overrode
    inputs: list[InputRecord] = field(default_factory=list)
    outputs: list[ArtifactRecord] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # Where experiment trackers (--report-to) wrote: {tracker, path}; never hashed, so never stale or missing.
    optional_outputs: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [asdict(i) for i in self.inputs]
        d["outputs"] = [o.to_json() for o in self.outputs]
        if not self.optional_outputs:  # absent unless a tracker wrote: untracked runs' records are unchanged
            del d["optional_outputs"]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        return cls(
            key=d["key"],
            stage=d["stage"],
            command=d.get("command", ""),
            params=d.get("params", {}),
            kat_version=d.get("kat_version", ""),
            started_at=d.get("started_at", ""),
            finished_at=d.get("finished_at", ""),
            forced=bool(d.get("forced", False)),
            forced_over=list(d.get("forced_over", [])),
            inputs=[InputRecord(**i) for i in d.get("inputs", [])],
            outputs=[ArtifactRecord(**o) for o in d.get("outputs", [])],
            stats=d.get("stats", {}),
            optional_outputs=list(d.get("optional_outputs", [])),
        )

    def output(self, path: str) -> ArtifactRecord | None:
        return next((o for o in self.outputs if o.path == path), None)


class Manifest:
    """In-memory view of `manifest.json`; `load` then `record` then `save`."""

    def __init__(self, path: Path, runs: dict[str, RunRecord] | None = None) -> None:
        self.path = path
        self.runs: dict[str, RunRecord] = runs or {}

    @classmethod
    def load(cls, path: Path) -> Manifest:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {data.get('schema_version')!r}")
            runs = {k: RunRecord.from_json(v) for k, v in data.get("runs", {}).items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise KatError(
                f"the manifest is unreadable: {exc}",
                file=str(path),
                hint="restore it from a backup, or move it aside and re-run the pipeline from `kat pairs download`",
            ) from None
        return cls(path, runs)

    def owner_of(self, path: str) -> RunRecord | None:
        """The run that last wrote `path`, if any."""
        for run in self.runs.values():
            if run.output(path) is not None:
                return run
        return None

    def record(self, run: RunRecord) -> None:
        """Store `run` under its key, taking ownership of its outputs from older runs."""
        written = {o.path for o in run.outputs}
        for other in self.runs.values():
            if other.key != run.key:
                other.outputs = [o for o in other.outputs if o.path not in written]
        self.runs[run.key] = run

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "runs": {k: self.runs[k].to_json() for k in sorted(self.runs)},
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

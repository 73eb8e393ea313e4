"""What a section may see of the workspace: files (each read is recorded), the manifest, status, evaluations.

The report stage hands every section one `ReportContext`. A section reads workspace files only through `read`,
which records the file and its checksum as an input of the report run, so `kat status` marks the report stale
when anything it showed changes. Judgements and numbers that other commands already compute (freshness from
`kat status`, held-out accuracy from `kat eval rm`) arrive here ready-made as plain JSON, through callables the
pipeline provides, so the report never recomputes them differently. This module knows no section and no stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.progress import ProgressFn, no_progress
from katcli.workspace import RunRecord


@dataclass(frozen=True)
class Evaluations:
    """Results of one evaluation command (`kat.eval.rm/1` documents, one per shared held-out set) and its notes."""

    results: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportContext:
    root: Path  # the workspace root
    read: Callable[[str], Path]  # records a workspace-relative file as an input of the report, returns its path
    runs: dict[str, RunRecord]  # the manifest's runs, the report's own excluded
    status: dict[str, Any]  # `kat status --json` (schema kat.status/1), the report's own row excluded
    kat_version: str
    evaluate_rm: Callable[[], Evaluations]  # what `kat eval rm --json` prints, per held-out set
    progress: ProgressFn = no_progress
    notes: list[str] = field(default_factory=list)  # shown on the command line after the report is written

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def run_dirs(self, parent: str, marker: str) -> list[str]:
        """Names of the directories `parent/<name>/` holding `marker`, sorted."""
        base = self.root / parent
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / marker).is_file())

    def runs_of(self, stage: str) -> list[RunRecord]:
        return [r for k, r in sorted(self.runs.items()) if r.stage == stage]

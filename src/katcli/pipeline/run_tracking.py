"""`--report-to` for a training stage: who the tracked run is, and where its trackers wrote (for the manifest).

The run's identity comes from the kat run: its tracker run name is the run key (`rm/density-s1`), its group the
objective's arm (`rm/uniform`, `rm/density-aware`) so seeds of an arm pool, its tags the arm and the objective; the
project is the workspace directory's name. The configuration is the run's recorded parameters, plus the recorded
command and the versions of kat, torch and Python. Trackers write under `tracking/`; where they wrote is recorded in
the run's manifest record as optional outputs (never hashed, never part of what makes a run fresh or stale).
A tracker's failure is one warning (on stderr, when it happens); its notes (W&B going offline) join the run's notes.
This module knows the workspace and the run; the trackers themselves are `katcli.train.tracking`.
"""

from __future__ import annotations

import logging
import platform
import re
from typing import Any

from katcli import __version__
from katcli.workspace import Workspace

log = logging.getLogger("katcli.tracking")


def arm(density_aware: bool) -> str:
    return "density-aware" if density_aware else "uniform"


def project_name(ws: Workspace) -> str:
    """The tracker project of a workspace: its directory's name, in the characters every tracker accepts."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ws.root.name).strip("-.") or "kat"


def _warn(message: str) -> None:
    log.warning("Warning: %s", message)


def open_trackers(ws: Workspace, meta: Any, report_to: tuple[str, ...], key: str, command: str,
                  resume_step: int | None, notes: list[str]) -> Any:
    """The run's `Trackers` (None without --report-to), its identity from the run's `RunMeta`."""
    if not report_to:
        return None
    import torch

    from katcli.train.tracker_backends import make_backend
    from katcli.train.tracking import TRACKING_DIR, TrackedRun, Trackers

    side = arm(meta.sampling.density_aware)
    config = {k: v for k, v in meta.to_json().items() if k not in ("schema", "format", "step", "eval")}
    run = TrackedRun(
        name=key, group=f"{meta.objective}/{side}", tags=(side, meta.objective), project=project_name(ws),
        root=ws.abs(TRACKING_DIR), config=config, command=command,
        versions={"kat": __version__, "torch": torch.__version__, "python": platform.python_version()},
        resume_step=resume_step,
    )
    return Trackers([make_backend(name) for name in report_to], run, warn=_warn, note=notes.append)


def record_trackers(ws: Workspace, run: Any, trackers: Any, notes: list[str]) -> None:
    """Record where each tracker that stayed on wrote (manifest optional outputs) and say it in the notes."""
    if trackers is None:
        return
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from katcli.errors import KatError

    for name, where in trackers.where():
        path = url2pathname(urlparse(where).path) if where.startswith("file:") else where
        try:
            shown = ws.rel(path)
        except KatError:  # outside the workspace (a tracking server, $TRACKIO_DIR elsewhere): recorded as is
            shown = where
        record = getattr(run, "optional_output", None)
        if record is not None:
            record(name, shown)
        notes.append(f"{name} tracking: {shown}")

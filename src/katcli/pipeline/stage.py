"""`StageRun`: the one way a stage reads checked inputs, writes outputs and records itself.

    with StageRun(ws, "prefixes", params={...}, force=cfg.force) as run:
        src = run.input(paths.PAIRS)            # missing / modified / stale -> UpstreamError
        tmp = run.output(paths.PREFIXES)        # write here; moved into place on success
        ...
        run.describe(paths.PREFIXES, rows=n)
        run.stats["unique_prefixes"] = n

On success every output is fsync'ed and `os.replace`d into place, and only then is the manifest
rewritten (atomically). On any exception, Ctrl-C included, temp files are removed, nothing already
in place is touched and the manifest is unchanged. The workspace lock is held throughout; once it is
taken, temp files that killed runs left anywhere in the workspace are removed.
This module knows the protocol, not what any stage computes.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from katcli import __version__
from katcli.errors import KatError
from katcli.pipeline import registry
from katcli.pipeline.upstream import Judge, load_judge
from katcli.workspace import ArtifactRecord, InputRecord, Manifest, RunRecord, Workspace, WorkspaceLock
from katcli.workspace.atomic import commit_temp, remove_quietly, temp_name
from katcli.workspace.hashing import sha256_file
from katcli.workspace.leftovers import Leftover, remove_leftovers

# The CLI sets this to the command line the user typed, so the manifest records it verbatim.
invocation: ContextVar[str | None] = ContextVar("kat_invocation", default=None)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def current_command() -> str:
    return invocation.get() or shlex.join(["kat", *sys.argv[1:]])


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while outputs and manifest are swapped in, so a run is never half-committed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda *a: pending.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


class StageRun:
    def __init__(
        self,
        ws: Workspace,
        stage: str,
        *,
        name: str | None = None,
        params: dict[str, Any] | None = None,
        force: bool = False,
        verify: bool = False,
        command: str | None = None,
    ) -> None:
        self.ws = ws
        self.spec = registry.spec(stage)
        if self.spec.named and not name:
            raise KatError(f"stage {stage} needs a run name", hint="pass --name NAME")
        self.name = name
        self.key = self.spec.key(name)
        self.params = dict(params or {})
        self.force = force
        self.verify = verify
        self.command = command or current_command()
        self.stats: dict[str, Any] = {}
        self.forced_over: list[str] = []
        self.took_over_lock: dict | None = None
        self.removed_leftovers: list[Leftover] = []
        self._inputs: dict[str, InputRecord] = {}
        self._outputs: dict[str, Path] = {}  # rel -> temp path (None-like for adopted files)
        self._adopted: set[str] = set()
        self._described: dict[str, dict[str, Any]] = {}
        self._lock = WorkspaceLock(ws.state_dir / "lock", self.command)
        self._judge: Judge | None = None
        self.started_at = ""
        self.record: RunRecord | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> StageRun:
        self.ws.ensure()
        self._lock.acquire()
        self.took_over_lock = self._lock.took_over
        try:
            self.removed_leftovers = remove_leftovers(self.ws.root)  # temp files of killed runs
            self._judge = load_judge(self.ws, verify=self.verify)
        except BaseException:
            self._lock.release()
            raise
        self.started_at = _now()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._commit()
            else:
                self._discard()
        except BaseException:
            self._discard()
            raise
        finally:
            self._lock.release()
        return False

    # -- inputs ----------------------------------------------------------------------------
    @property
    def judge(self) -> Judge:
        if self._judge is None:
            raise RuntimeError("StageRun used outside its `with` block")
        return self._judge

    def input(self, rel: str) -> Path:
        """Check an upstream artifact (unless --force) and record the checksum it was read at.

        The file is hashed afresh here, once, not looked up in the hash cache (which serves `kat status`): an
        edit the cache cannot see must still be caught by the check and recorded with its new checksum.
        """
        digest = self.judge.fresh_sha(rel)
        problem = self.judge.check_input(rel)
        if problem is not None:
            if not self.force or digest is None:
                raise problem  # --force cannot conjure a missing file
            self.forced_over.append(f"{problem.message}")
        self._inputs[rel] = InputRecord(rel, digest)
        return self.ws.abs(rel)

    def read(self, rel: str) -> Path:
        """Record a workspace file as read, as it is, without judging it (a report shows stale runs too)."""
        self._inputs[rel] = InputRecord(rel, self.judge.current_sha(rel))
        return self.ws.abs(rel)

    def external_input(self, path: Path | str, *, hash_file: bool = True) -> Path:
        """Record an input from outside the workspace (a user's file, a dataset mirror)."""
        p = Path(path).expanduser().resolve()
        digest = sha256_file(p) if hash_file and p.is_file() else None
        self._inputs[str(p)] = InputRecord(str(p), digest, external=True)
        return p

    # -- outputs ---------------------------------------------------------------------------
    def output(self, rel: str) -> Path:
        """A temporary path to write `rel` to; it replaces `rel` only when the whole run succeeds."""
        target = self.ws.abs(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(target)
        remove_quietly(tmp)
        self._outputs[rel] = tmp
        return tmp

    def adopt(self, rel: str) -> Path:
        """Record an output the stage already put in place itself (e.g. atomically saved checkpoints)."""
        self._adopted.add(rel)
        return self.ws.abs(rel)

    def describe(self, rel: str, *, rows: int | None = None, shape: list[int] | tuple[int, ...] | None = None) -> None:
        self._described[rel] = {"rows": rows, "shape": list(shape) if shape is not None else None}

    # -- commit / discard ------------------------------------------------------------------
    def _discard(self) -> None:
        for tmp in self._outputs.values():
            remove_quietly(tmp)

    def _commit(self) -> None:
        missing = [rel for rel, tmp in self._outputs.items() if not tmp.exists()]
        missing += [rel for rel in self._adopted if not self.ws.abs(rel).is_file()]
        if missing:
            raise KatError(f"stage {self.key} did not write {', '.join(sorted(missing))}")
        records: list[ArtifactRecord] = []
        hasher = self.judge.hasher
        with _sigint_deferred():
            for rel in sorted(set(self._outputs) | self._adopted):
                target = self.ws.abs(rel)
                if rel in self._outputs:
                    tmp = self._outputs[rel]
                    digest = sha256_file(tmp)
                    commit_temp(tmp, target)
                else:
                    digest = sha256_file(target)
                hasher.remember(target, digest)
                meta = self._described.get(rel, {})
                records.append(
                    ArtifactRecord(
                        rel, digest, target.stat().st_size, rows=meta.get("rows"), shape=meta.get("shape")
                    )
                )
            self.record = RunRecord(
                key=self.key,
                stage=self.spec.name,
                command=self.command,
                params=self.params,
                kat_version=__version__,
                started_at=self.started_at,
                finished_at=_now(),
                forced=bool(self.forced_over) or self.force,
                forced_over=self.forced_over,
                inputs=list(self._inputs.values()),
                outputs=records,
                stats=self.stats,
            )
            # Re-read: the lock guarantees nobody else wrote since, but be exact about what we replace.
            manifest = Manifest.load(self.ws.manifest_path)
            manifest.record(self.record)
            manifest.save()
            hasher.save()


def record_input(ws: Workspace, run: Any, path: Path) -> None:
    """A file inside the workspace is checked against the manifest; one outside is recorded as external."""
    try:
        rel = ws.rel(path)
    except KatError:
        run.external_input(path)
        return
    run.input(rel)

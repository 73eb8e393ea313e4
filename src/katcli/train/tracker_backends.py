"""The four `--report-to` backends behind `katcli.train.tracking.Backend`: TensorBoard, W&B, Trackio, MLflow.

Each is offline by default and keeps what it writes under the workspace's `tracking/` folder:

- TensorBoard: `tracking/tensorboard/<run>/` (a fresh run replaces its old curves; `--resume` reopens the folder
  with `purge_step`, so steps after the checkpoint that the interrupted run had logged are dropped).
- W&B: `WANDB_MODE` when set; otherwise online only if the W&B host answers and an API key is configured, else
  `offline` (with a note) into `tracking/wandb/` (its cache and data dirs too, unless `WANDB_CACHE_DIR` /
  `WANDB_DATA_DIR` say otherwise). The run id is kept in `tracking/ids/wandb/<run>` so `--resume`
  continues the same run (`resume="allow"`).
- Trackio: its local store (`$TRACKIO_DIR`, else `tracking/trackio/`); `--resume` reopens the run by name.
- MLflow: `$MLFLOW_TRACKING_URI`, else a file store in `tracking/mlflow/`; the run id is kept in
  `tracking/ids/mlflow/<run>`.

Each backend imports its package only in `start`. Nothing here touches torch's, numpy's or Python's global RNG
(ids come from `secrets`), so a tracked run computes exactly what an untracked one does.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import secrets
import shutil
import socket
import string
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from katcli.train.tracking import MLFLOW, TENSORBOARD, TRACKIO, WANDB, TrackedRun


def _id_file(run: TrackedRun, backend: str) -> Path:
    return run.root / "ids" / backend / f"{run.name}.txt"


def _stored_id(run: TrackedRun, backend: str) -> str | None:
    path = _id_file(run, backend)
    return path.read_text(encoding="utf-8").strip() or None if path.is_file() else None


def _store_id(run: TrackedRun, backend: str, run_id: str) -> None:
    path = _id_file(run, backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n", encoding="utf-8")


def _start_text(run: TrackedRun) -> dict[str, Any]:
    return {"config": run.config, "command": run.command, "versions": run.versions, "group": run.group,
            "tags": list(run.tags)}


_EVENT_FILES = itertools.count()  # event files this process opened: names stay distinct within one second


class TensorBoard:
    """Event files written by tensorboard's own record writer, in the calling thread, one event per step holding all
    its scalars. (One event per scalar, as `SummaryWriter.add_scalar` makes, cost ~8x more per step; tensorboard's
    threaded `EventFileWriter` cost a tiny model 2-6% of its step time, its pure-Python CRC contending for the GIL;
    here a step costs one CRC, ~0.3 ms: `bench/bench_tracking.py`.)"""

    name = TENSORBOARD
    FLUSH_SECONDS = 10.0

    def __init__(self) -> None:
        self.records: Any = None
        self.dir: Path | None = None
        self._flushed = 0.0

    def start(self, run: TrackedRun) -> int:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.dir = run.root / "tensorboard" / run.name
        held = 0
        if run.resume_step is None:
            shutil.rmtree(self.dir, ignore_errors=True)  # a fresh run of this name replaces the old curves
        elif any(self.dir.glob("events.out.tfevents.*")):
            held = run.resume_step
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_EVENT_FILES)}"
        self.records = RecordWriter(open(self.dir / name, "xb"))
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if held:
            # purge_step: readers drop what earlier files logged after the checkpoint (the interrupted run's tail).
            self._write(Event(step=held + 1, wall_time=time.time(), session_log=SessionLog(status=SessionLog.START)))
        else:
            self._text("kat/run", _start_text(run), 0)
        self.records.flush()
        self._flushed = time.monotonic()
        return held

    def _write(self, event: Any) -> None:
        self.records.write(event.SerializeToString())
        if time.monotonic() - self._flushed > self.FLUSH_SECONDS:
            self.records.flush()
            self._flushed = time.monotonic()

    def _text(self, tag: str, value: Any, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

        body = "```json\n" + json.dumps(value, indent=2) + "\n```"
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[body.encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        summary = Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])
        self._write(Event(step=step, wall_time=time.time(), summary=summary))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=key, simple_value=value) for key, value in metrics.items()]
        self._write(Event(step=step, wall_time=time.time(), summary=Summary(value=values)))

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None:
        if ok and summary:
            step = int(summary.get("summary/step", 0))
            self.log(summary, step)
            self._text("kat/summary", dict(summary), step)
        self.records.close()

    def where(self) -> str:
        return str(self.dir)


# ---------------------------------------------------------------------------------------------------- W&B


def _reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` (name resolution included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def _has_wandb_key(env: Mapping[str, str], host: str) -> bool:
    if env.get("WANDB_API_KEY"):
        return True
    import netrc

    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(env: Mapping[str, str] | None = None,
               reachable: Callable[[str], bool] = _reachable) -> tuple[str, str | None]:
    """(mode, note): `WANDB_MODE` when set; online when the host answers and a key exists; else offline + why."""
    env = os.environ if env is None else env
    if env.get("WANDB_MODE"):
        return env["WANDB_MODE"], None
    host = urlparse(env.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    if not reachable(host):
        why = f"{host} is unreachable"
    elif not _has_wandb_key(env, host):
        why = "no W&B API key is configured (`wandb login` or WANDB_API_KEY)"
    else:
        return "online", None
    return "offline", f"W&B logs offline: {why}; upload later with `wandb sync DIR` (set WANDB_MODE to choose)"


@contextlib.contextmanager
def _env_defaults(values: Mapping[str, str]) -> Any:
    """Environment variables set for the block where the user has not set them; the environment is restored."""
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class Wandb:
    name = WANDB

    def __init__(self) -> None:
        self.run: Any = None
        self.mode = "offline"
        self.notes: list[str] = []

    def start(self, run: TrackedRun) -> int:
        import wandb

        self.mode, note = wandb_mode()
        if note:
            self.notes.append(note)
        # wandb-core's own logs and staging files go to ~/.cache unless told otherwise: keep them in the workspace;
        # an offline run sends no crash reports either.
        defaults = {"WANDB_CACHE_DIR": str(run.root / "wandb" / "cache"),
                    "WANDB_DATA_DIR": str(run.root / "wandb" / "data"),
                    **({"WANDB_ERROR_REPORTING": "false"} if self.mode == "offline" else {})}
        run_id = _stored_id(run, WANDB) if run.resume_step is not None else None
        offline_before = run_id is not None and any((run.root / "wandb").glob(f"offline-run-*-{run_id}"))
        if run_id is None:
            run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
            _store_id(run, WANDB, run_id)
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, disable_git=True,
                                  save_code=False, x_save_requirements=False, x_disable_machine_info=True)
        run.root.mkdir(parents=True, exist_ok=True)
        with _env_defaults(defaults):  # read when wandb-core starts, at the first init
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT") or run.project, name=run.name, group=run.group,
                tags=list(run.tags), config={**run.config, "kat_command": run.command, "kat_versions": run.versions},
                dir=str(run.root), id=run_id, resume="allow", mode=self.mode, settings=settings,
                reinit="finish_previous",
            )
        if run.resume_step is None:
            return 0
        if self.mode == "online":
            return max(0, int(self.run.step) - 1)
        return run.resume_step if offline_before else 0

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None:
        if ok:
            self.run.summary.update(dict(summary))
        self.run.finish(exit_code=0 if ok else 1)

    def where(self) -> str:
        if self.mode == "online" and getattr(self.run, "url", None):
            return str(self.run.url)
        return str(Path(self.run.settings.sync_dir))


# ---------------------------------------------------------------------------------------------------- Trackio


class Trackio:
    name = TRACKIO

    def __init__(self) -> None:
        self.run: Any = None
        self.dir = ""
        self.notes: list[str] = []

    def start(self, run: TrackedRun) -> int:
        import sys

        before = os.environ.get("TRACKIO_DIR")
        wanted = before or str(run.root / "trackio")
        if "trackio" not in sys.modules:  # trackio reads TRACKIO_DIR once, when first imported
            os.environ["TRACKIO_DIR"] = wanted
            try:
                import trackio  # noqa: F401
            finally:
                if before is None:
                    del os.environ["TRACKIO_DIR"]
        import trackio
        from trackio import utils
        from trackio.sqlite_storage import SQLiteStorage

        self.dir = str(utils.TRACKIO_DIR)
        if Path(self.dir).resolve() != Path(wanted).resolve():
            self.notes.append(f"Trackio writes to {self.dir} (set when this process first used it), not {wanted}")
        resume = run.resume_step is not None
        with contextlib.redirect_stdout(io.StringIO()):  # trackio prints its banner on stdout
            self.run = trackio.init(
                project=run.project, name=run.name, group=run.group,
                config={**run.config, "kat_command": run.command, "kat_versions": run.versions,
                        "kat_tags": list(run.tags)},
                resume="allow" if resume else "never", auto_log_cpu=False, auto_log_gpu=False, embed=False,
            )
        self.project = run.project
        return int(SQLiteStorage.get_last_step(run.project, run=run.name) or 0) if resume else 0

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None:
        from trackio import context_vars

        if ok and summary:
            self.run.log(dict(summary), step=int(summary.get("summary/step", 0)))
        with contextlib.redirect_stdout(io.StringIO()):
            self.run.finish()
        if context_vars.current_run.get() is self.run:
            context_vars.current_run.set(None)  # or trackio finishes it again (and says so) at exit

    def where(self) -> str:
        return self.dir


# ---------------------------------------------------------------------------------------------------- MLflow


def _flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flat_params(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = json.dumps(value) if not isinstance(value, str) else value
    return out


class Mlflow:
    name = MLFLOW

    def __init__(self) -> None:
        self.client: Any = None
        self.run_id = ""
        self.uri = ""

    def start(self, run: TrackedRun) -> int:
        self.uri = os.environ.get("MLFLOW_TRACKING_URI") or (run.root / "mlflow").as_uri()
        if self.uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode behind this switch; it is the serverless one.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(tracking_uri=self.uri)
        experiment = client.get_experiment_by_name(run.project)
        eid = experiment.experiment_id if experiment is not None else client.create_experiment(run.project)
        stored = _stored_id(run, MLFLOW) if run.resume_step is not None else None
        if stored is not None:
            self.run_id = stored
            client.update_run(stored, status="RUNNING")
            history = client.get_metric_history(stored, "train/learning_rate")
            return max((m.step for m in history), default=0)
        tags = {"kat.group": run.group, "kat.command": run.command, "mlflow.source.name": "kat",
                **{f"kat.tag.{t}": "true" for t in run.tags},
                **{f"kat.version.{k}": v for k, v in run.versions.items()}}
        self.run_id = client.create_run(eid, run_name=run.name, tags=tags).info.run_id
        _store_id(run, MLFLOW, self.run_id)
        params = [Param(k, v[:6000]) for k, v in sorted(_flat_params(run.config).items())]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.run_id, params=params[i:i + 100])
        if run.tags:
            client.log_batch(self.run_id, tags=[RunTag("kat.arm", run.tags[0])])
        return 0

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, summary: Mapping[str, float], *, ok: bool) -> None:
        if ok and summary:
            self.log(summary, int(summary.get("summary/step", 0)))
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "KILLED")

    def where(self) -> str:
        return self.uri


def make_backend(name: str) -> Any:
    """The backend called `name` (one of `katcli.train.tracking.BACKENDS`), not yet started."""
    return {TENSORBOARD: TensorBoard, WANDB: Wandb, TRACKIO: Trackio, MLFLOW: Mlflow}[name]()

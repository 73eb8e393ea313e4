"""`--report-to` end to end: each backend's files read back with that backend's own reader; resume; failures.

One tiny reward model is trained once with every installed backend (module fixture); each reader test skips, saying
which extra to install, when its backend is absent. CI installs them all (`.ci/run`: `.[test,trackers]`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)
from rmkit import make_tokenizer, make_workspace, planted_pairs
from trackingkit import installed, require, wandb_history, wandb_records

import katcli.train.tracker_backends as tracker_backends
import katcli.train.tracking as T
from katcli.errors import InterruptedRun
from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm, tiny_config
from katcli.workspace import Manifest

SMALL = dict(max_len=64, lr=3e-3, max_steps=6, eval_every=3, batch_size=8)
PAIRS = planted_pairs(60)


def _lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _train_lines(run_dir: Path) -> dict[int, dict]:
    return {row["step"]: row for row in _lines(run_dir) if row.get("type") != "eval"}


def _eval_lines(run_dir: Path) -> dict[int, dict]:
    return {row["step"]: row for row in _lines(run_dir) if row.get("type") == "eval"}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A density-aware reward model trained with every installed tracker; (workspace, run directory)."""
    backends = tuple(name for name in T.BACKENDS if installed(name))
    if not backends:
        pytest.skip("no tracker extra is installed (pip install -c constraints.txt -e '.[trackers]')")
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("TRACKIO_DIR", raising=False)
        mp.delenv("WANDB_PROJECT", raising=False)
        ws = make_workspace(root / "exp", PAIRS)
        result = run_train_rm(ws, tiny_config(density_aware=True, name="density-s1", report_to=backends, **SMALL))
    return ws, result


def test_tensorboard_has_every_step_of_metrics_jsonl(tracked):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws, result = tracked
    acc = EventAccumulator(str(ws.abs("tracking/tensorboard/rm/density-s1")), size_guidance={"scalars": 0})
    acc.Reload()
    lines = _train_lines(result.directory)
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == sorted(lines) == list(range(1, 7))
    assert all(e.value == pytest.approx(lines[e.step]["loss"], rel=1e-6) for e in loss)
    lr = {e.step: e.value for e in acc.Scalars("train/learning_rate")}
    assert lr == pytest.approx({s: row["lr"] for s, row in lines.items()}, rel=1e-6)
    evals = _eval_lines(result.directory)
    q5 = acc.Scalars("eval/q5_rarest/accuracy")
    assert [e.step for e in q5] == [3, 6]
    assert [e.value for e in q5] == pytest.approx([evals[s]["by_quintile"][4]["accuracy"] for s in (3, 6)])
    assert any(tag.startswith("kat/run") for tag in acc.Tags()["tensors"])  # the config, command, versions


def test_the_manifest_lists_tracker_outputs_unhashed(tracked):
    ws, _ = tracked
    record = Manifest.load(ws.manifest_path).runs["rm/density-s1"]
    places = {o["tracker"]: o["path"] for o in record.optional_outputs}
    assert set(places) == {name for name in T.BACKENDS if installed(name)}
    if "tensorboard" in places:
        assert places["tensorboard"] == "tracking/tensorboard/rm/density-s1"
    assert not any(o.path.startswith("tracking/") for o in record.outputs)  # never hashed, never judged
    assert "report_to" not in record.params  # where a run is watched is not part of what it is


def test_wandb_offline_run_file(tracked):
    require("wandb")
    ws, result = tracked
    files = list(ws.abs("tracking/wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    records = wandb_records(files[0])
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == "rm/density-s1" and run.run_group == "rm/density-aware"
    assert list(run.tags) == ["density-aware", "rm"]
    assert run.run_id == ws.abs("tracking/ids/wandb/rm/density-s1.txt").read_text().strip()
    history = wandb_history(records)
    lines = _train_lines(result.directory)
    assert sorted(history) == list(range(1, 7))
    assert all(json.loads(history[s]["train/loss"]) == pytest.approx(lines[s]["loss"]) for s in lines)
    assert "eval/accuracy" in history[3] and "eval/q1_commonest/accuracy" in history[6]
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["config"]["name"] == "density-s1" and config["kat_command"]
    assert any(ws.abs("tracking/wandb/cache").rglob("core-debug-*"))  # wandb-core's logs stay in the workspace
    summary = {i.key or "/".join(i.nested_key): i.value_json for r in records
               if r.WhichOneof("record_type") == "summary" for i in r.summary.update}
    assert json.loads(summary["summary/step"]) == 6


def test_trackio_local_store(tracked):
    require("trackio")
    from trackio import utils
    from trackio.sqlite_storage import SQLiteStorage

    ws, result = tracked
    record = Manifest.load(ws.manifest_path).runs["rm/density-s1"]
    where = {o["tracker"]: o["path"] for o in record.optional_outputs}["trackio"]
    assert Path(utils.TRACKIO_DIR) == (ws.abs(where) if not Path(where).is_absolute() else Path(where))
    logs = SQLiteStorage.get_logs("exp", "rm/density-s1")
    lines = _train_lines(result.directory)
    train = {row["step"]: row["train/loss"] for row in logs if "train/loss" in row}
    assert train == pytest.approx({s: row["loss"] for s, row in lines.items()})
    assert [row["step"] for row in logs if "eval/accuracy" in row] == [3, 6]
    config = SQLiteStorage.get_run_config("exp", "rm/density-s1")
    assert config["kat_tags"] == ["density-aware", "rm"] and config["config"]["density_aware"] is True


def test_mlflow_file_store(tracked):
    require("mlflow")
    from mlflow import MlflowClient

    ws, result = tracked
    client = MlflowClient(tracking_uri=ws.abs("tracking/mlflow").as_uri())
    run_id = ws.abs("tracking/ids/mlflow/rm/density-s1.txt").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.run_name == "rm/density-s1" and run.info.status == "FINISHED"
    assert run.data.tags["kat.group"] == "rm/density-aware" and run.data.tags["kat.arm"] == "density-aware"
    assert run.data.params["config.name"] == "density-s1"
    lines = _train_lines(result.directory)
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 7))
    assert {m.step: m.value for m in history} == pytest.approx({s: row["loss"] for s, row in lines.items()})
    assert run.data.metrics["summary/step"] == 6


def test_resume_with_tensorboard_keeps_one_value_per_step(tmp_path):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = make_workspace(tmp_path / "ws", PAIRS, tokenizer=make_tokenizer(PAIRS))
    cfg = tiny_config(**{**SMALL, "max_steps": 8, "save_every": 3, "eval_every": 4}, report_to=("tensorboard",))

    def interrupt(record):
        if record["step"] == 5:  # after steps 4 and 5 were logged, past the checkpoint of step 3
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun):
        run_train_rm(ws, cfg, on_step=interrupt)
    run_train_rm(ws, TrainRMConfig(**{**cfg.__dict__, "resume": True}))
    acc = EventAccumulator(str(ws.abs("tracking/tensorboard/rm/uniform")), size_guidance={"scalars": 0})
    acc.Reload()
    lines = _train_lines(ws.abs("rm_checkpoints/uniform"))
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, 9))  # exactly one value per step
    assert {e.step: e.value for e in loss} == pytest.approx({s: row["loss"] for s, row in lines.items()})
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [4, 8]


class Raising:
    """A backend that raises on every call."""

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, run):
        raise RuntimeError("bad credentials")

    log = finish = where = start


def test_a_tracker_raising_everywhere_changes_no_kat_file(tmp_path, monkeypatch, caplog):
    tok = make_tokenizer(PAIRS)
    plain = make_workspace(tmp_path / "plain", PAIRS, tokenizer=tok)
    run_train_rm(plain, tiny_config(**SMALL))
    monkeypatch.setattr(tracker_backends, "make_backend", Raising)
    broken = make_workspace(tmp_path / "broken", PAIRS, tokenizer=tok)
    with caplog.at_level(logging.WARNING, logger="katcli.tracking"):
        result = run_train_rm(broken, tiny_config(**SMALL, report_to=("wandb", "mlflow")))
    assert result.step == 6
    a, b = plain.abs("rm_checkpoints/uniform"), broken.abs("rm_checkpoints/uniform")
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}
    assert [r.getMessage() for r in caplog.records] == [
        f"Warning: {name} logging failed (start: RuntimeError: bad credentials); it is off for the rest of this "
        "run, training goes on and kat's own files are unaffected" for name in ("wandb", "mlflow")]
    assert not Manifest.load(broken.manifest_path).runs["rm/uniform"].optional_outputs


@pytest.mark.slow
def test_under_torchrun_only_rank_0_logs(tmp_path):
    require("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torchrunkit import torchrun

    ws = make_workspace(tmp_path / "ws", PAIRS)
    torchrun(ws, "train", "rm", "--name", "ddp", "--depth", "1", "--max-steps", "4", "--batch-size", "8",
             "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu", "--report-to", "tensorboard")
    logdir = ws.abs("tracking/tensorboard/rm/ddp")
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1  # one writer: rank 0's
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert sorted(p.name for p in ws.abs("tracking").iterdir()) == ["tensorboard"]

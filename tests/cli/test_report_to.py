"""`--report-to` on the command line: every training command and quickstart take it; bad or missing is an Error."""

from __future__ import annotations

import importlib.util

import pytest

from katcli.pipeline.quickstart import QuickstartConfig, quickstart_plan

HELP_HINT = "Hint: `kat train rm --help` lists each flag with the values it accepts"


@pytest.mark.parametrize("command", [("train", "rm"), ("train", "sft"), ("train", "dpo"), ("train", "grpo"),
                                     ("quickstart",)])
def test_every_training_command_and_quickstart_take_report_to(kat, command):
    result = kat(*command, "--help")
    assert result.exit_code == 0 and "--report-to" in result.stdout


def test_an_unknown_tracker_is_an_error_naming_the_choices(kat, ws_dir):
    result = kat("train", "rm", "--report-to", "tensorboard,comet")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --report-to comet: not a tracker (choose from none, tensorboard, wandb, trackio, mlflow)", HELP_HINT]
    assert not ws_dir.exists()


def _without(monkeypatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


def test_a_missing_extra_stops_before_anything_runs(kat, ws_dir, monkeypatch):
    _without(monkeypatch, "wandb")
    result = kat("train", "dpo", "--report-to", "tensorboard", "--report-to", "wandb")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --report-to wandb needs the wandb package, which is not installed",
        "Hint: pip install 'katcli[wandb]' (or 'katcli[trackers]' for all four), or drop --report-to wandb"]
    result = kat("quickstart", "--report-to", "wandb")
    assert result.exit_code == 1 and result.stderr.startswith("Error: --report-to wandb needs the wandb package")
    assert "1/" not in result.stdout and not (ws_dir / "data").exists()  # refused before step 1


def test_quickstart_passes_report_to_to_every_training_step_only():
    plain = quickstart_plan(QuickstartConfig())
    assert not any("--report-to" in step.argv for step in plain)
    tracked = quickstart_plan(QuickstartConfig(report_to=("none",)))
    assert [s.argv for s in tracked] == [s.argv for s in plain]
    if importlib.util.find_spec("tensorboard") is None:
        pytest.skip("the tensorboard extra is not installed")
    tracked = quickstart_plan(QuickstartConfig(report_to=("tensorboard",)))
    for before, after in zip(plain, tracked):
        trains = before.argv[:2] in {("train", k) for k in ("rm", "sft", "dpo", "grpo")}
        assert after.argv == ((*before.argv, "--report-to", "tensorboard") if trains else before.argv)

"""`kat quickstart` never overwrites an experiment: only an empty workspace or one the sample filled is refilled."""

from __future__ import annotations

import pytest
from katfixtures import record_stage

from katcli.workspace import paths as P


@pytest.fixture
def no_steps(monkeypatch):
    """An empty plan: these tests are about which workspace quickstart accepts, not about running it."""
    import katcli.pipeline.quickstart as qs

    monkeypatch.setattr(qs, "quickstart_plan", lambda cfg: [])


def test_a_workspace_holding_an_experiment_is_refused_and_left_as_it_was(kat, ws_dir, no_steps):
    # `kat -w ./exp quickstart` on a real experiment replaced its imported pairs with the sample's and retrained
    # over its reward models.
    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'}, command="kat pairs import hh.jsonl.gz --skip-invalid")
    record_stage(ws_dir, "rm", {"rm_checkpoints/uniform/model_000010.pt": "w"}, name="uniform", inputs=(P.PAIRS,))
    before = {p: p.read_bytes() for p in ws_dir.rglob("*") if p.is_file() and ".kat" not in p.parts}
    result = kat("quickstart", workspace=ws_dir)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {ws_dir.resolve()} already holds an experiment (its data/pairs_all.jsonl is from `kat pairs import "
        "hh.jsonl.gz --skip-invalid`, not the built-in sample): quickstart would replace it and retrain over its "
        "runs\n"
        "Hint: run it in a new directory, e.g. `kat quickstart --workspace ./kat-demo`\n"
    )
    assert {p: p.read_bytes() for p in ws_dir.rglob("*") if p.is_file() and ".kat" not in p.parts} == before


def test_an_empty_or_sample_workspace_is_accepted(kat, ws_dir, tmp_path, no_steps):
    assert kat("-q", "quickstart", workspace=tmp_path / "new").exit_code == 0
    assert kat("-q", "pairs", "download", "--from", "sample", "--budget", "50").exit_code == 0
    assert kat("-q", "quickstart", workspace=ws_dir).exit_code == 0  # quickstart's own demo, re-run


def test_ctrl_c_in_a_step_is_one_line_naming_the_step_and_what_is_recorded(kat, tmp_path, monkeypatch):
    # The step's own boundary printed "Interrupted: …; nothing was written." and quickstart a second line, though
    # the steps before it were recorded.
    import katcli.pipeline.quickstart as qs
    from katcli.cli import status as status_cmd

    plan = [qs.Step("Preference pairs from the built-in sample", ("pairs", "download", "--from", "sample",
                                                                  "--budget", "50")),
            qs.Step("Status", ("status",))]
    monkeypatch.setattr(qs, "quickstart_plan", lambda cfg: plan)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(status_cmd, "compute_status", interrupted)
    result = kat("-q", "quickstart", workspace=tmp_path / "new")
    assert result.exit_code == 130
    assert result.stderr == ("Interrupted; that step wrote nothing (quickstart step 2/2, Status; steps 1–1 are "
                             "recorded).\n")

"""`kat report` through the CLI: what it prints, its refusals, and a report of what little a workspace holds."""

from __future__ import annotations

import json

from katfixtures import record_stage

from katcli.workspace import paths as P


def test_a_workspace_with_nothing_recorded_is_refused(kat, ws_dir):
    result = kat("report")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: nothing to report: the workspace records no runs yet\n"
        "Hint: run `kat pairs download` first, or `kat quickstart` for the whole experiment\n"
    )
    assert not (ws_dir / "reports").exists()
    assert not (ws_dir / "manifest.json").exists()


def test_out_must_lie_inside_the_workspace(kat, ws_dir, tmp_path):
    result = kat("report", "--out", str(tmp_path / "elsewhere"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: --out {tmp_path / 'elsewhere'} is outside the workspace {ws_dir.resolve()}\n"
        "Hint: pass a directory inside the workspace (default: reports/) and copy the files from there\n"
    )
    result = kat("report", "--out", ".")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --out . must be a directory of its own inside the workspace\n")


def test_out_must_be_a_directory_no_other_stage_writes_into(kat, ws_dir):
    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'})
    result = kat("report", "--out", "manifest.json")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --out manifest.json is a file, not a directory\nHint: use the default, --out reports\n")
    result = kat("report", "--out", "data")  # it wrote report.html beside the pairs
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: --out data holds data/pairs_all.jsonl, an output of `kat test-pairs`\n"
        "Hint: pass a directory of its own for the report (default: --out reports)\n")
    assert sorted(p.name for p in (ws_dir / "data").iterdir()) == ["pairs_all.jsonl"]
    result = kat("report", "--out", "")
    assert result.stderr.startswith("Error: --out '' must be a directory of its own inside the workspace\n")
    assert kat("-q", "report", "--out", "paper/figs").exit_code == 0
    assert kat("-q", "report", "--out", "paper/figs").exit_code == 0  # its own earlier report is no obstacle


def test_pairs_alone_give_a_provenance_report_recorded_in_the_manifest(kat, ws_dir):
    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'})
    result = kat("report")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Sections: Provenance"
    assert lines[1] == f"Figures: 0, each as PNG and PDF in {ws_dir.resolve() / 'reports'}"
    assert lines[2].startswith(f"Wrote {ws_dir.resolve() / 'reports' / 'report.html'} (")
    page = (ws_dir / "reports" / "report.html").read_text(encoding="utf-8")
    assert "kat pairs download" in page and "Every run is up to date" in page  # the re-run command kat status offers
    status = json.loads(kat("status", "--json").stdout)
    row = next(s for s in status["stages"] if s["key"] == "report")
    assert row["state"] == "ok" and row["title"] == "Report"
    assert [a["path"] for a in row["artifacts"]] == ["reports/report.html", "reports/report.md"]

    (ws_dir / P.PAIRS).write_text('{"a": 2}\n', encoding="utf-8")
    status = json.loads(kat("status", "--json").stdout)
    row = next(s for s in status["stages"] if s["key"] == "report")
    assert row["state"] == "stale"
    assert row["reasons"] == [f"its input {P.PAIRS} changed after this run"]


def test_help_lists_report_with_an_example(kat):
    assert "report" in kat("--help").stdout
    out = kat("report", "--help").stdout
    assert "Example: kat -w ./exp report --open" in out


def test_open_hands_the_page_to_the_browser(kat, ws_dir, monkeypatch):
    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'})
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert kat("report", "--open").exit_code == 0
    assert opened == [(ws_dir.resolve() / "reports" / "report.html").as_uri()]


def test_the_quickstart_step_is_a_working_command(kat, ws_dir):
    from katcli.pipeline.report import QUICKSTART_STEP

    record_stage(ws_dir, "pairs", {P.PAIRS: '{"a": 1}\n'})
    assert kat(*QUICKSTART_STEP.argv).exit_code == 0
    assert (ws_dir / "reports" / "report.html").is_file()

"""Workspace guards through real commands: lock contention, stale-lock takeover, --force, failed writes."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys

import pytest

from katcli.workspace import Manifest
from katcli.workspace import paths as P

_HOLDER = """
import sys
from pathlib import Path
from katcli.workspace import WorkspaceLock
lock = WorkspaceLock(Path(sys.argv[1]), "kat train rm --name uniform")
lock.acquire()
print("held", flush=True)
sys.stdin.read()  # holds the lock until the test closes our stdin (or kills us): no timer to race
"""


@pytest.fixture
def holder(ws_dir):
    procs = []

    def start():
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(ws_dir / P.STATE_DIR / "lock")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_writer_exits_1_naming_the_holder(kat, ws_dir, holder):
    proc = holder()
    result = kat("pairs", "download", "--from", "sample")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        f"Error: the workspace is locked by pid {proc.pid} (`kat train rm --name uniform`, since "
    )
    assert lines[0].endswith(f") ({ws_dir.resolve() / P.STATE_DIR / 'lock'})")
    assert lines[1] == "Hint: wait for that command to finish; kat allows one writing command per workspace"
    assert not (ws_dir / P.PAIRS).exists() and not (ws_dir / P.MANIFEST).exists()


def test_lock_left_by_a_killed_process_is_taken_over(kat, ws_dir, holder):
    proc = holder()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = kat("pairs", "download", "--from", "sample", "--source", "hh")
    assert result.exit_code == 0, result.output
    assert Manifest.load(ws_dir / P.MANIFEST).runs["pairs"].outputs[0].rows > 0


def test_status_reads_while_a_writer_holds_the_lock(kat, ws_dir, holder):
    holder()
    result = kat("status", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["next_command"] == "kat pairs download"


def test_modified_input_stops_the_stage_and_force_is_recorded(kat, ws_dir):
    assert kat("pairs", "download", "--from", "sample", "--source", "uf").exit_code == 0
    pairs = ws_dir / P.PAIRS
    pairs.write_text(pairs.read_text(encoding="utf-8").replace("a", "b", 1), encoding="utf-8")
    refused = kat("prefixes")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[0] == (  # quoted without -w DIR: right in a copied or moved workspace too
        "Error: data/pairs_all.jsonl was modified after `kat pairs download --from sample --source uf` wrote it")
    assert refused.stderr.splitlines()[1] == (
        "Hint: re-run `kat pairs download --from sample --source uf`, or pass --force to use it as it is"
    )
    assert not (ws_dir / P.PREFIXES).exists()

    forced = kat("prefixes", "--force")
    assert forced.exit_code == 0, forced.output
    run = Manifest.load(ws_dir / P.MANIFEST).runs["prefixes"]
    assert run.forced is True
    assert run.forced_over[0] == (
        "data/pairs_all.jsonl was modified after `kat pairs download --from sample --source uf` wrote it")
    status = json.loads(kat("status", "--json").stdout)
    by_key = {r["key"]: r for r in status["stages"]}
    assert by_key["pairs"]["state"] == "modified" and by_key["prefixes"]["last_run"]["forced"] is True


def test_a_failure_mid_stage_keeps_the_old_outputs_and_manifest(kat, ws_dir, monkeypatch):
    assert kat("pairs", "download", "--from", "sample", "--source", "hh").exit_code == 0
    assert kat("prefixes").exit_code == 0
    manifest_before = (ws_dir / P.MANIFEST).read_bytes()
    prefixes_before = (ws_dir / P.PREFIXES).read_bytes()

    def disk_full(task, done, total=None):
        if task == "write prefixes":  # fail while the new prefixes file is being written
            raise OSError(28, "No space left on device", str(ws_dir / P.PREFIXES))

    @contextlib.contextmanager
    def fake_progress(state):
        yield disk_full

    monkeypatch.setattr("katcli.cli.prefixes.progress", fake_progress)
    monkeypatch.setattr("shutil.disk_usage", lambda path: shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30, 3 * 2**10))
    result = kat("prefixes")
    assert result.exit_code == 1
    assert result.stderr == (  # the file being written and the room left
        f"Error: No space left on device while writing {ws_dir / P.PREFIXES} (3.0 KB free there)\n"
        "Hint: nothing was replaced; fix the cause and re-run (--verbose for details)\n"
    )
    assert (ws_dir / P.MANIFEST).read_bytes() == manifest_before
    assert (ws_dir / P.PREFIXES).read_bytes() == prefixes_before
    assert not [p for p in (ws_dir / "data").iterdir() if ".tmp-" in p.name]


def test_workspace_inside_a_file_is_an_error(kat, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a directory", encoding="utf-8")
    for args in (("status",), ("status", "--json"), ("prefixes",)):
        result = kat(*args, workspace=afile / "sub")
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"Error: workspace {afile.resolve() / 'sub'} is not a directory: {afile.resolve()} is a file",
            "Hint: pass --workspace DIR with a directory (it is created if missing)",
        ]


def test_empty_workspace_option_is_an_error(kat, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAT_WORKSPACE", str(tmp_path / "from-env"))  # an empty -w must not fall back to it
    for args in (("-w", "", "status"), ("--workspace=", "status"), ("-w", "", "prefixes"),
                 ("quickstart", "--workspace", "")):
        result = kat(*args, workspace=None)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "Error: --workspace is empty",
            "Hint: pass --workspace DIR, or leave it out for the default ($KAT_WORKSPACE, else the per-user data dir)",
        ]
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_pairs_file_is_the_same_located_error_in_every_stage_that_reads_it(kat, ws_dir, tmp_path):
    # A copy cut mid-line: every reader names the line and its column (json's own "line 1 column 290" contradicted
    # the file's line number, and prefixes printed `JSONDecodeError: …`) and one hint naming real commands.
    src = tmp_path / "pairs.jsonl"
    rows = [{"prefix": {"messages": [{"role": "user", "content": f"question {i}"}]}, "chosen": "a fine answer",
             "rejected": "no", "src": "mine"} for i in range(4)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert kat("-q", "pairs", "import", str(src)).exit_code == 0
    pairs = ws_dir / P.PAIRS
    text = pairs.read_bytes()
    cut = text.index(b"question 2") + 4
    pairs.write_bytes(text[:cut])
    column = text.index(b'"question 2') - text.rindex(b"\n", 0, cut)  # the opening quote, 1-based
    where = f"({ws_dir.resolve() / P.PAIRS}:3)"
    expected = f"Error: invalid JSON: Unterminated string starting at column {column} {where}"
    for args in (["prefixes"], ["train", "tokenizer", "--vocab-size", "300"]):  # train rm: test_rm_inputs
        result = kat(*args, "--force")
        assert result.exit_code == 1, args
        lines = [x for x in result.stderr.splitlines() if x.startswith(("Error:", "Hint:"))]
        assert lines[0] == expected, args
        assert lines[1].endswith("re-create it with `kat pairs download` or `kat pairs import`"), args
        assert "Traceback" not in result.output

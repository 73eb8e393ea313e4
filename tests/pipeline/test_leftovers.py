"""Temp files of killed runs: the next writing command removes those whose writer is dead; status lists them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from katcli.workspace import paths as P
from katcli.workspace.atomic import temp_name, temp_writer
from katcli.workspace.leftovers import find_leftovers
from katcli.workspace.lock import pid_alive


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def _import_pairs(kat, tmp_path) -> None:
    """A cheap real writing command."""
    src = tmp_path / "mine.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    result = kat("pairs", "import", str(src))
    assert result.exit_code == 0, result.output


def _plant(ws_dir, dead_pid):
    """A dead writer's temps (pairs, a checkpoint, the hash cache) and a live writer's (this process)."""
    dead = [
        ws_dir / "data" / f".pairs_all.jsonl.tmp-{dead_pid}",
        ws_dir / "rm_checkpoints" / "uniform" / f".model_000010.pt.tmp-{dead_pid}",
        ws_dir / P.STATE_DIR / f".hash_cache.json.tmp-{dead_pid}",
    ]
    live = ws_dir / "data" / f".prefixes_all.jsonl.tmp-{os.getpid()}"
    for i, path in enumerate([*dead, live]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (1000 * (i + 1)))
    return dead, live


def test_temp_names_carry_the_writer_pid(tmp_path):
    tmp = temp_name(tmp_path / "pairs_all.jsonl")
    assert tmp.name == f".pairs_all.jsonl.tmp-{os.getpid()}"
    assert temp_writer(tmp.name) == os.getpid()
    for other in ("pairs_all.jsonl", ".pairs_all.jsonl.tmp-", ".x.tmp-12a", "x.tmp-12", ".tmp-12"):
        assert temp_writer(other) is None


def test_pid_alive(dead_pid):
    assert pid_alive(os.getpid())
    assert pid_alive(1)  # init: alive though this process may not signal it
    assert not pid_alive(dead_pid)
    assert not pid_alive(0) and not pid_alive(-1)


def test_status_lists_dead_writers_temps_and_a_stage_removes_them(kat, ws_dir, tmp_path, dead_pid):
    dead, live = _plant(ws_dir, dead_pid)
    result = kat("status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["leftovers"] == [
        {"path": f"{P.STATE_DIR}/.hash_cache.json.tmp-{dead_pid}", "size": 3000},
        {"path": f"data/.pairs_all.jsonl.tmp-{dead_pid}", "size": 1000},
        {"path": f"rm_checkpoints/uniform/.model_000010.pt.tmp-{dead_pid}", "size": 2000},
    ]
    text = kat("status").stdout
    assert (f"Leftovers: 3 temp file(s) from killed runs (5.9 KB), e.g. {P.STATE_DIR}/.hash_cache.json.tmp-"
            f"{dead_pid}; the next writing command removes them.") in text
    assert all(p.exists() for p in dead), "status must not remove anything"

    _import_pairs(kat, tmp_path)
    assert [p for p in dead if p.exists()] == []
    assert live.exists(), "a running writer's temp file is never touched"
    assert json.loads(kat("status", "--json").stdout)["leftovers"] == []
    assert "Leftovers" not in kat("status").stdout


def test_stage_run_reports_what_it_removed(ws_dir, dead_pid):
    from katcli.pipeline.stage import StageRun
    from katcli.workspace import Workspace

    dead, live = _plant(ws_dir, dead_pid)
    with StageRun(Workspace(ws_dir), "pairs", command="kat pairs download") as run:
        run.output(P.PAIRS).write_text("{}\n", encoding="utf-8")
    assert sorted(f.path for f in run.removed_leftovers) == sorted(p.resolve() for p in dead)
    assert find_leftovers(ws_dir.resolve()) == [] and live.exists()


def test_a_killed_writer_leaves_a_temp_the_next_run_removes(kat, ws_dir, tmp_path):
    """The real thing: a writer killed with SIGKILL mid-write, then `kat prefixes`."""
    _import_pairs(kat, tmp_path)
    target = ws_dir / P.PREFIXES
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from katcli.workspace import atomic_write\n"
        "with atomic_write(Path(sys.argv[1])) as fh:\n"
        "    fh.write(b'half'); fh.flush(); print('writing', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    left = target.with_name(f".{target.name}.tmp-{writer.pid}")
    assert left.exists()
    assert len(json.loads(kat("status", "--json").stdout)["leftovers"]) == 1
    assert kat("prefixes").exit_code == 0
    assert not left.exists()

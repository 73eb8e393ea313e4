"""Workspace lock: contention names the holder; a lock left by a killed process is taken over."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from katfixtures import record_stage

from katcli.errors import KatError
from katcli.workspace import WorkspaceLock
from katcli.workspace import paths as P

_HOLDER = """
import sys
from pathlib import Path
from katcli.workspace import WorkspaceLock
lock = WorkspaceLock(Path(sys.argv[1]), "kat pairs download --budget 1k")
lock.acquire()
print("held", flush=True)
sys.stdin.read()  # holds the lock until the test closes our stdin (or kills us): no timer to race
"""


def _spawn_holder(lock_file):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock_file)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_with_holder_pid_and_command(ws_dir):
    lock_file = ws_dir / P.STATE_DIR / "lock"
    proc = _spawn_holder(lock_file)
    try:
        with pytest.raises(KatError) as err:
            record_stage(ws_dir, "pairs", {P.PAIRS: "{}\n"})
        msg = err.value.message
        assert msg.startswith(f"the workspace is locked by pid {proc.pid} (`kat pairs download --budget 1k`, since ")
        assert err.value.file == str(lock_file)
        assert err.value.hint == "wait for that command to finish; kat allows one writing command per workspace"
        assert not (ws_dir / P.PAIRS).exists()
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_killed_process_is_taken_over(ws_dir):
    lock_file = ws_dir / P.STATE_DIR / "lock"
    proc = _spawn_holder(lock_file)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(lock_file.read_text())["pid"] == proc.pid  # the file outlived its process
    with WorkspaceLock(lock_file, "kat prefixes") as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == proc.pid
        assert json.loads(lock_file.read_text())["command"] == "kat prefixes"
    record_stage(ws_dir, "pairs", {P.PAIRS: "{}\n"})  # and a stage can run afterwards


def test_released_lock_is_not_reported_as_taken_over(ws_dir):
    lock_file = ws_dir / "lock"
    with WorkspaceLock(lock_file, "kat a"):
        pass
    with WorkspaceLock(lock_file, "kat b") as lock:
        assert lock.took_over is None


def test_lock_is_exclusive_within_one_process_too(ws_dir):
    lock_file = ws_dir / "lock"
    with WorkspaceLock(lock_file, "kat a"):
        with pytest.raises(KatError, match="the workspace is locked by pid"):
            WorkspaceLock(lock_file, "kat b").acquire()

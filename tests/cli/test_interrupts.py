"""Ctrl-C at any moment exits 130 with one line: while the CLI imports, while help renders, mid-stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from katcli.cli.interrupts import MESSAGE
from katcli.workspace import paths as P

SRC = str(Path(__file__).resolve().parents[2] / "src")

# How the two entry points start: the console script (what pip generates for `kat = "katcli.__main__:main"`)
# and `python -m katcli`.
# `{mark}` is where control passes to kat (the slow test counts its delays from there).
ENTRIES = {
    "console-script": "{mark}from katcli.__main__ import main\nsys.exit(main())\n",
    "python-m": "import runpy\n{mark}runpy.run_module('katcli', run_name='__main__', alter_sys=True)\n",
}


def _entry(name: str, mark: str = "") -> str:
    return ENTRIES[name].replace("{mark}", mark)


# The child pauses, saying so, when it reaches `event` with an argument containing `needle`, so the test can
# interrupt it at exactly that point instead of guessing a delay.
_PAUSING = """
import os, sys, time
def hook(event, args):
    if event == {event!r} and {needle!r} in str(args[0]):
        os.write(1, b"paused\\n")
        time.sleep(30)
sys.addaudithook(hook)
sys.argv = ["kat", *sys.argv[1:]]
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _interrupt_when_paused(entry: str, event: str, needle: str, *argv: str) -> subprocess.CompletedProcess:
    code = _PAUSING.format(event=event, needle=needle) + _entry(entry)
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        assert proc.stdout.readline() == "paused\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("command", [["--help"], ["status"]], ids=["help", "status"])
def test_ctrl_c_while_the_cli_imports_exits_130_with_one_line(entry, command, ws_dir):
    argv = command if command == ["--help"] else ["-w", str(ws_dir), *command]
    done = _interrupt_when_paused(entry, "import", "click", *argv)  # click: the first heavy import
    assert done.returncode == 130, done.stderr
    assert done.stderr == MESSAGE + "\n"


def test_ctrl_c_mid_stage_still_cleans_up(kat, ws_dir, tmp_path):
    src = tmp_path / "mine.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    assert kat("pairs", "import", str(src)).exit_code == 0
    # Paused as `kat prefixes` opens its second temp file (the first is already on disk).
    done = _interrupt_when_paused("console-script", "open", ".prefix_id_map.tsv.tmp-", "-w", str(ws_dir), "prefixes")
    assert done.returncode == 130, done.stderr
    assert done.stderr == MESSAGE + "\n"
    assert [p.name for p in (ws_dir / "data").iterdir() if ".tmp-" in p.name] == []
    assert not (ws_dir / P.PREFIXES).exists()


@pytest.mark.slow
@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("command", [["--help"], ["status"]], ids=["help", "status"])
def test_ctrl_c_at_any_moment_of_start_up(entry, command, ws_dir):
    """Real timing, no pauses: SIGINT 0.02–0.5 s after Python hands over to kat's entry point.

    Counted from there, not from the spawn: before it the interpreter itself is starting (on a loaded machine
    that alone takes 0.1 s), and a Ctrl-C then is Python's to report, not kat's.
    """
    argv = command if command == ["--help"] else ["-w", str(ws_dir), *command]
    code = "import os, sys\nsys.argv = ['kat', *sys.argv[1:]]\n" + _entry(entry, mark="os.write(2, b'>')\n")
    for delay in (0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        proc = subprocess.Popen([sys.executable, "-c", code, *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        assert proc.stderr.read(1) == ">"
        time.sleep(delay)
        _interrupt_and_check(proc, delay)


@pytest.mark.slow
@pytest.mark.parametrize("command", [["--help"], ["status"]], ids=["help", "status"])
def test_ctrl_c_during_a_real_python_dash_m_start_up(command, ws_dir):
    """The real `python -m katcli`, timed from the spawn: from 0.15 s on, the interpreter has handed over."""
    argv = command if command == ["--help"] else ["-w", str(ws_dir), *command]
    for delay in (0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        proc = subprocess.Popen([sys.executable, "-m", "katcli", *argv],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        time.sleep(delay)
        _interrupt_and_check(proc, delay)


def _interrupt_and_check(proc: subprocess.Popen, delay: float) -> None:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, f"after {delay} s:\n{err}"
    # Finished (0); interrupted (130, one line); or, once `main` has returned, killed by SIGINT during the
    # interpreter's teardown, which resets SIGINT to its default action (a shell reports 130 too).
    outcomes = ((130, MESSAGE + "\n"), (0, ""), (-signal.SIGINT, ""))
    assert (proc.returncode, err) in outcomes, f"after {delay} s: {proc.returncode} {err!r}"

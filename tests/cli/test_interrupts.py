"""Ctrl-C at any moment exits 130 with one line: while the CLI imports, while help renders, mid-stage."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from katcli.cli.interrupts import FINISHED_MESSAGE, MESSAGE
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
import os, signal, sys
seen = [0]
def hook(event, args):
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        return  # kat has not armed its handler yet: a Ctrl-C now is the interpreter's own start-up to report
    if event == {event!r} and {needle!r} in str(args[0]):
        seen[0] += 1
        if seen[0] != {nth}:
            return
        try:  # (the signal can come as soon as "paused" is out)
            os.write(1, b"paused\\n")
            sys.stdin.read()  # until the test closes our stdin: no timer to race
        except KeyboardInterrupt:
            if {swallow!r}:  # what a finalizer's "Exception ignored in" or a library's `except BaseException` does
                os.close(os.open({swallow!r}, os.O_CREAT | os.O_WRONLY))
                return
            raise
sys.addaudithook(hook)
sys.argv = ["kat", *sys.argv[1:]]
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _interrupt_when_paused(entry: str, event: str, needle: str, *argv: str, nth: int = 1, swallow: str = "",
                           prelude: str = "") -> subprocess.CompletedProcess:
    code = prelude + _PAUSING.format(event=event, needle=needle, nth=nth, swallow=swallow) + _entry(entry)
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        assert "paused\n" in iter(proc.stdout.readline, "")  # after whatever the command printed
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=120)  # stdin stays open: the pause ends by the signal, not by end of input
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


def test_a_swallowed_ctrl_c_still_stops_the_stage_before_it_records(kat, ws_dir, tmp_path):
    """A KeyboardInterrupt that lands where something swallows it (here: the pause itself) is remembered: the stage
    stops before recording anything, exit 130, one line — it never finishes as if nothing happened."""
    src = tmp_path / "mine.jsonl"
    src.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    assert kat("pairs", "import", str(src)).exit_code == 0
    marker = tmp_path / "swallowed"  # the child says so here: it did swallow the KeyboardInterrupt
    done = _interrupt_when_paused("console-script", "open", ".prefix_id_map.tsv.tmp-", "-w", str(ws_dir), "prefixes",
                                  swallow=str(marker))
    assert marker.exists()
    assert (done.returncode, done.stderr) == (130, MESSAGE + "\n")
    assert not (ws_dir / P.PREFIXES).exists()
    assert "prefixes" not in json.loads((ws_dir / P.MANIFEST).read_text())["runs"]


def test_ctrl_c_after_the_command_finished_is_one_line_and_130(ws_dir):
    """During the exit (atexit hooks, the interpreter's teardown) Ctrl-C neither lies ("nothing was written") nor
    kills kat by the signal with no line."""
    prelude = ("import atexit, contextlib\n"
               "atexit.register(lambda: contextlib.suppress(OSError).__enter__() or open('/nonexistent/kat-exit-hook'))\n")
    done = _interrupt_when_paused("console-script", "open", "kat-exit-hook", "-w", str(ws_dir), "status",
                                  prelude=prelude)
    assert (done.returncode, done.stderr) == (130, FINISHED_MESSAGE + "\n")


# Moments of start-up, counted in module imports after control passes to kat: events, not delays, so a loaded
# machine moves the moment nowhere.
_IMPORT_MOMENTS = (1, 3, 10, 30, 60, 100, 150, 200, 300, 400)


@pytest.mark.slow
@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("command", [["--help"], ["status"]], ids=["help", "status"])
def test_ctrl_c_at_any_moment_of_start_up(entry, command, ws_dir):
    """SIGINT at the n-th module import after kat's entry point armed its handler."""
    argv = command if command == ["--help"] else ["-w", str(ws_dir), *command]
    for nth in _IMPORT_MOMENTS:
        done = _interrupt_when_paused_or_finished(entry, nth, *argv)
        _check_outcome(done, f"import #{nth}")


def _interrupt_when_paused_or_finished(entry: str, nth: int, *argv: str) -> subprocess.CompletedProcess:
    """Like `_interrupt_when_paused` at the n-th `import` event, but a start-up with fewer imports just finishes."""
    code = _PAUSING.format(event="import", needle="", nth=nth, swallow="") + _entry(entry)
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        if proc.stdout.readline() == "paused\n":
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check_outcome(done: subprocess.CompletedProcess, moment: str) -> None:
    assert "Traceback" not in done.stderr, f"at {moment}:\n{done.stderr}"
    # Interrupted (130, one line), or finished before that moment came (0).
    outcomes = ((130, MESSAGE + "\n"), (130, FINISHED_MESSAGE + "\n"), (0, ""))
    assert (done.returncode, done.stderr) in outcomes, f"at {moment}: {done.returncode} {done.stderr!r}"


_SITE_HOOK = """
import os, signal, sys
seen = [0]
def hook(event, args):
    if event != "import" or signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        return  # counted from when kat arms its handler: before, a Ctrl-C is the interpreter's start-up to report
    seen[0] += 1
    if seen[0] == int(os.environ["KAT_TEST_PAUSE_AT"]):
        os.write(1, b"paused\\n")
        sys.stdin.read()
sys.addaudithook(hook)
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", [["--help"], ["status"]], ids=["help", "status"])
def test_ctrl_c_during_a_real_python_dash_m_start_up(command, ws_dir, tmp_path):
    """The real `python -m katcli` (a sitecustomize pauses it at the n-th import once kat armed its handler)."""
    (tmp_path / "sitecustomize.py").write_text(_SITE_HOOK, encoding="utf-8")
    argv = command if command == ["--help"] else ["-w", str(ws_dir), *command]
    env = _env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]
    for nth in _IMPORT_MOMENTS:
        proc = subprocess.Popen([sys.executable, "-m", "katcli", *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, "KAT_TEST_PAUSE_AT": str(nth)})
        try:
            if proc.stdout.readline() == "paused\n":
                proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        _check_outcome(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), f"import #{nth}")

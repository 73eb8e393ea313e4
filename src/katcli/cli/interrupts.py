"""Ctrl-C before a command has started: exit 130 with one line, never a traceback.

Loading the CLI (click, typer, rich, the command modules) takes a few tenths of a second. A KeyboardInterrupt
raised in the middle of it printed a long traceback, and once, landing inside a C call, exit 1 with a
`SystemError`. So the entry point arms a SIGINT handler before anything heavy is imported: it writes one line
and ends the process at once with `os._exit(130)`, which is safe because nothing has been written yet. While
a command runs (`raising()`, entered by the CLI's error boundary), Ctrl-C raises KeyboardInterrupt again, so a
stage can discard its temp files and the boundary prints the same line.

Arming must itself be instant, so this module imports only what the interpreter has already loaded (`os`) and
the built-in `_signal` (the `signal` module pulls in `enum`, `contextlib` pulls in `collections`: each costs
milliseconds, long enough for a Ctrl-C to land in them). It knows nothing about commands.
"""

from __future__ import annotations

import _signal
import os

MESSAGE = "Interrupted: stopped before finishing; nothing was written."


def _exit_now(signum: int, frame: object) -> None:
    try:
        os.write(2, (MESSAGE + "\n").encode())
    finally:
        os._exit(130)


def arm() -> None:
    """From now on Ctrl-C exits 130 at once; for the `kat` process's entry point, before its heavy imports.

    A SIGINT the process was started ignoring (`nohup`, a background job) stays ignored, and a handler someone
    else installed is left alone. Only the main thread can install handlers; elsewhere this does nothing.
    """
    if _signal.getsignal(_signal.SIGINT) in (_signal.default_int_handler, _exit_now):
        try:
            _signal.signal(_signal.SIGINT, _exit_now)
        except ValueError:  # not the main thread
            pass


FINISHED_MESSAGE = "Interrupted while exiting: the command had already finished and recorded its outputs."


def _raise_and_remember(signum: int, frame: object) -> None:
    from katcli.errors import note_interrupt

    note_interrupt()
    raise KeyboardInterrupt


def _exit_finished(signum: int, frame: object) -> None:
    try:
        os.write(2, (FINISHED_MESSAGE + "\n").encode())
    finally:
        os._exit(130)


def exit_now(code: object) -> None:
    """End the `kat` process after its command: run the atexit hooks, flush, `os._exit`.

    Ctrl-C from here on prints one line and exits 130. The interpreter's own teardown is skipped: it restores
    SIGINT's default action early (a Ctrl-C then killed kat by the signal, status −2, with no line) and can take
    seconds with torch loaded. Every kat writer has fsync'ed and closed its files before this point.
    """
    import atexit
    import sys

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    try:
        if _signal.getsignal(_signal.SIGINT) is not _signal.SIG_IGN:
            _signal.signal(_signal.SIGINT, _exit_finished)
    except ValueError:  # not the main thread
        pass
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(status)


class raising:
    """`with raising():` Ctrl-C raises KeyboardInterrupt inside (a running command cleans up), the quick exit after.

    Does nothing where the quick exit was not armed (an in-process caller such as a test's CliRunner).
    """

    def __enter__(self) -> None:
        self._armed = _signal.getsignal(_signal.SIGINT) is _exit_now
        if self._armed:
            _signal.signal(_signal.SIGINT, _raise_and_remember)

    def __exit__(self, *exc: object) -> None:
        if self._armed:
            _signal.signal(_signal.SIGINT, _exit_now)

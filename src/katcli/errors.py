"""kat's own error type: what went wrong, where, and what to do about it.

Every layer raises `KatError` for problems a user can fix (bad input, missing upstream artifacts, bad flags).
The CLI's single error boundary renders it as `Error: <message> (<file>:<line>)` plus the hint, exit 1.
This module knows nothing about Typer, Rich or the workspace; it imports nothing from katcli.
"""

from __future__ import annotations


class KatError(Exception):
    """A user-facing error. `file`/`line` locate bad input; `hint` says how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
        exit_code: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line
        self.exit_code = exit_code

    def located(self) -> str:
        """The message with its `(file:line)` suffix, as the CLI prints it after `Error: `."""
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{self.message} ({where})"

    def __str__(self) -> str:
        return self.located()


class ConfigError(KatError):
    """A flag or config value is invalid; the message names the CLI flag."""


class UpstreamError(KatError):
    """An input artifact is missing, modified or stale; the hint names the command that fixes it."""


class InterruptedRun(KatError):
    """Ctrl-C: the run stopped and left no partial artifact (exit 130)."""

    def __init__(self, message: str = "interrupted; nothing was written") -> None:
        super().__init__(message, exit_code=130)


# A Ctrl-C is remembered as well as raised: a KeyboardInterrupt can be swallowed where it lands (a finalizer's
# "Exception ignored in", a library's `except BaseException`), and a remembered one is raised again at the next
# safe point (a progress update, before a stage records itself), so it is never ignored.
_ctrl_c_seen = False


def note_interrupt() -> None:
    global _ctrl_c_seen
    _ctrl_c_seen = True


def interrupt_pending() -> bool:
    return _ctrl_c_seen


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt again when a Ctrl-C arrived earlier in this process and did not stop it."""
    if _ctrl_c_seen:
        raise KeyboardInterrupt

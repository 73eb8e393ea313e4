"""The progress-callback protocol that domain code reports through.

Domain packages never print. Long loops call `progress(task, done, total)` with a cumulative `done`
count (and `total` when known); the CLI turns those calls into Rich progress bars. This module knows
nothing about Rich and imports nothing from katcli.
"""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, task: str, done: int, total: int | None = None) -> None: ...


def no_progress(task: str, done: int, total: int | None = None) -> None:
    """The default callback: report nothing."""

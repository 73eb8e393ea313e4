"""One writer per workspace: an advisory `flock` on `.kat/lock`, with the holder described inside.

The kernel releases a `flock` when its process dies, so a lock file left behind by a killed process is
recognised as stale (the file exists but nobody holds the lock) and simply taken over. The file records
the holder's pid, command and start time so a blocked user can see who holds it.
This module knows nothing about stages; any writing command takes the lock.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from katcli.errors import KatError

try:  # POSIX only; on other platforms the lock degrades to a pid check
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal still exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class WorkspaceLock:
    """Context manager. `took_over` is set when a stale lock from a dead process was replaced."""

    def __init__(self, lock_file: Path, command: str) -> None:
        self.lock_file = lock_file
        self.command = command
        self.took_over: dict | None = None
        self._fd: int | None = None

    def _read_holder(self) -> dict:
        try:
            data = json.loads(self.lock_file.read_text(encoding="utf-8") or "{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif self._holder_alive():  # pragma: no cover
                raise BlockingIOError
        except BlockingIOError:
            os.close(fd)
            holder = self._read_holder()
            raise KatError(
                f"the workspace is locked by pid {holder.get('pid', '?')} "
                f"(`{holder.get('command', '?')}`, since {holder.get('started_at', '?')})",
                file=str(self.lock_file),
                hint="wait for that command to finish; kat allows one writing command per workspace",
            ) from None
        previous = self._read_holder()
        if previous.get("pid"):
            # The file outlived its process: the flock was free, so its holder is gone.
            self.took_over = previous
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def _holder_alive(self) -> bool:  # pragma: no cover - non-POSIX fallback
        pid = self._read_holder().get("pid")
        try:
            return bool(pid) and pid_alive(int(pid))
        except ValueError:
            return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            # Clear the holder before unlocking so a finished run never looks like a crashed one.
            os.ftruncate(self._fd, 0)
        finally:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkspaceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

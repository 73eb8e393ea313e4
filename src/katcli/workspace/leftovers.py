"""Temp files left behind by killed runs: find them, and remove those whose writer is dead.

Every kat writer puts bytes under `atomic.temp_name` (`.<name>.tmp-<pid>`) and moves them into place on
success, or removes them on failure; only a process killed outright (SIGKILL, power loss) leaves one behind,
and a big stage's can weigh hundreds of megabytes. A file whose pid is still alive belongs to a running
writer and is never touched. Removing is for writing commands, under the workspace lock; `kat status` only
lists. This module knows file names and pids, not which stage wrote what.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from katcli.workspace.atomic import temp_writer
from katcli.workspace.lock import pid_alive


@dataclass(frozen=True)
class Leftover:
    path: Path
    pid: int
    size: int


def find_leftovers(root: Path) -> list[Leftover]:
    """Temp files anywhere under `root` whose writing process is gone, sorted by path."""
    found: list[Leftover] = []
    if not root.is_dir():
        return found
    alive: dict[int, bool] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            pid = temp_writer(name)
            if pid is None:
                continue
            if pid not in alive:
                alive[pid] = pid_alive(pid)
            if alive[pid]:
                continue
            path = Path(dirpath) / name
            try:
                size = path.lstat().st_size
            except FileNotFoundError:
                continue
            found.append(Leftover(path, pid, size))
    return sorted(found, key=lambda f: f.path)


def remove_leftovers(root: Path) -> list[Leftover]:
    """Delete the temp files `find_leftovers` lists; call with the workspace lock held. Returns them."""
    gone: list[Leftover] = []
    for leftover in find_leftovers(root):
        try:
            leftover.path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue  # not ours to remove (permissions): leave it, `kat status` keeps listing it
        gone.append(leftover)
    return gone

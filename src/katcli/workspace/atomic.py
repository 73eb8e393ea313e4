"""Crash-safe file replacement: write to a temporary name beside the target, fsync, `os.replace`.

A reader therefore sees either the old file or the complete new one, never a half-written file.
This module knows nothing about manifests or stages; it moves bytes safely.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

_TEMP = re.compile(r"^\..+\.tmp-(\d+)$")


def temp_name(target: Path) -> Path:
    """A hidden temporary name in the target's directory (same filesystem, so `os.replace` is atomic).

    The writer's pid is part of the name, so a file left by a killed writer can be told from a live one's.
    """
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def temp_writer(name: str) -> int | None:
    """The pid of the process that wrote temp file `name` (a `temp_name`), or None for any other name."""
    m = _TEMP.match(name)
    return int(m.group(1)) if m else None


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Persist a directory entry change (a rename); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_temp(tmp: Path, target: Path) -> None:
    """fsync `tmp`, move it over `target` and persist the rename."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def atomic_write(target: Path | str, mode: str = "wb", **open_kwargs) -> Iterator:
    """Open a temporary file for writing; on success it replaces `target`, on error it vanishes.

    >>> with atomic_write(path, "w", encoding="utf-8") as fh:
    ...     fh.write("complete or nothing")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        remove_quietly(tmp)
        if exc.errno == errno.ENOSPC and exc.filename is None:  # a failed write() names no file: name the target
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    except BaseException:
        remove_quietly(tmp)
        raise


def write_text_atomic(target: Path | str, text: str) -> None:
    with atomic_write(target, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)

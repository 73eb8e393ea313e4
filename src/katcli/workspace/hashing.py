"""SHA-256 of artifacts, with a cache keyed on (size, mtime_ns, ctime_ns) so unchanged files are not re-read.

The cache serves `kat status` only; a stage hashes the inputs it reads afresh. ctime is in the key because
a user can restore a file's mtime (`touch -d`, `cp -p`, `rsync -t`) but not its ctime, so an edit that
keeps the size and the mtime is still seen. `--verify` bypasses the cache. The cache lives in the
workspace's `.kat/` directory and is a pure optimisation: deleting it only costs time. This module knows
nothing about stages or the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from katcli.workspace.atomic import write_text_atomic

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Remembers `sha256` per absolute path for a given (size, mtime_ns, ctime_ns)."""

    def __init__(self, cache_file: Path | None, *, verify: bool = False) -> None:
        self.cache_file = cache_file
        self.verify = verify
        self._entries: dict[str, dict] = {}
        self._dirty = False
        if cache_file is not None and cache_file.is_file():
            try:
                data = json.loads(cache_file.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self._entries = {k: v for k, v in data.items() if isinstance(v, dict)}
            except (OSError, ValueError):
                self._entries = {}  # a corrupt cache is only a cache: start over

    def sha256(self, path: Path) -> str:
        st = os.stat(path)
        key = str(path)
        entry = self._entries.get(key)
        if (
            not self.verify
            and entry is not None
            and entry.get("size") == st.st_size
            and entry.get("mtime_ns") == st.st_mtime_ns
            and entry.get("ctime_ns") == st.st_ctime_ns
        ):
            return str(entry["sha256"])
        digest = sha256_file(path)
        self.remember(path, digest, st)
        return digest

    def remember(self, path: Path, digest: str, st: os.stat_result | None = None) -> None:
        """Record a digest computed elsewhere (e.g. while writing) so the next lookup is free."""
        st = st or os.stat(path)
        self._entries[str(path)] = {
            "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "sha256": digest,
        }
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self.cache_file is None:
            return
        live = {k: v for k, v in sorted(self._entries.items()) if os.path.exists(k)}
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.cache_file, json.dumps(live, indent=0, sort_keys=True))
        except OSError:
            return  # read-only workspace: status still works, just slower next time
        self._dirty = False

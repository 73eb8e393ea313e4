"""The workspace layer: where kat's artifacts live, how they are written, hashed, locked and recorded.

This package knows files, checksums and the manifest. It knows nothing about what any stage computes
(that is `katcli.pipeline` and the domain packages) and nothing about the CLI.
"""

from katcli.workspace.atomic import atomic_write, fsync_dir
from katcli.workspace.hashing import HashCache, sha256_file
from katcli.workspace.lock import WorkspaceLock
from katcli.workspace.manifest import ArtifactRecord, InputRecord, Manifest, RunRecord
from katcli.workspace.paths import Workspace, default_root

__all__ = [
    "ArtifactRecord",
    "HashCache",
    "InputRecord",
    "Manifest",
    "RunRecord",
    "Workspace",
    "WorkspaceLock",
    "atomic_write",
    "default_root",
    "fsync_dir",
    "sha256_file",
]

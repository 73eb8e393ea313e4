"""Files in kat's training run folders that no run records: what a killed, interrupted or failed run left.

A training run writes its checkpoints, `metrics.jsonl`, `tokenizer.json` and (DPO) reference cache under their
final names in `<stage>_checkpoints/<name>/` while it runs, and the manifest records them only when it finishes.
Between a run that did not finish and the next writing command, those files are *unrecorded*:

- a folder whose latest step has its complete trio (model, meta, optim) is **resumable**: `--resume` continues
  exactly from it, so it is kept, whole, until that run is resumed or re-run (a fresh run clears it itself);
- every other unrecorded file is a **leftover**: `kat status` lists it and the next writing command removes it.

`kat status` lists both. A run folder is kat's: every file in it is judged, whatever its name. This module reads the
manifest and lists directories; it imports no torch (status must stay fast) and knows no training internals.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from katcli.workspace import Manifest, Workspace
from katcli.workspace import paths as P

#: The folders whose sub-folders are training runs (one per `--name`).
TRAINING_ROOTS = (P.RM_DIR, P.SFT_DIR, P.DPO_DIR, P.GRPO_DIR)
_STEP = re.compile(r"^(model|meta|optim)_(\d+)\.(pt|json)$")


@dataclass
class UnrecordedFolder:
    """One run folder's unrecorded files (workspace-relative), and the step `--resume` would continue from."""

    folder: str
    files: list[str] = field(default_factory=list)
    size: int = 0
    resumable_step: int | None = None  # the latest complete unrecorded checkpoint, or None: a plain leftover


def _recorded(manifest: Manifest) -> set[str]:
    return {o.path for run in manifest.runs.values() for o in run.outputs}


def resumable_step(directory: Path) -> int | None:
    """The latest step whose model, meta and optim files are all in `directory`, or None."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    steps: dict[int, set[str]] = {}
    for name in names:
        m = _STEP.match(name)
        if m:
            steps.setdefault(int(m.group(2)), set()).add(m.group(1))
    if not steps:
        return None
    last = max(steps)
    return last if steps[last] == {"model", "meta", "optim"} else None


def folder_unrecorded(ws: Workspace, rel_folder: str, recorded: set[str]) -> UnrecordedFolder:
    """The unrecorded files of one run folder (regular files, any depth; links count as files)."""
    found = UnrecordedFolder(rel_folder)
    root = ws.abs(rel_folder)
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(dirpath) / name
            rel = path.relative_to(ws.root).as_posix()
            if rel in recorded or ".tmp-" in name:  # temp files are `workspace.leftovers`' business
                continue
            found.files.append(rel)
            try:
                found.size += path.lstat().st_size
            except FileNotFoundError:
                pass
    found.files.sort()
    if found.files and any(_STEP.match(Path(f).name) for f in found.files):
        found.resumable_step = resumable_step(root)
    return found


def find_unrecorded(ws: Workspace, manifest: Manifest | None = None) -> list[UnrecordedFolder]:
    """Every training run folder holding unrecorded files, sorted by folder."""
    if not ws.root.is_dir():
        return []
    manifest = manifest if manifest is not None else Manifest.load(ws.manifest_path)
    recorded = _recorded(manifest)
    out: list[UnrecordedFolder] = []
    for root in TRAINING_ROOTS:
        base = ws.abs(root)
        if not base.is_dir() or base.is_symlink():
            continue
        for entry in sorted(base.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                found = folder_unrecorded(ws, f"{root}/{entry.name}", recorded)
                if found.files:
                    out.append(found)
    return out


def remove_files(ws: Workspace, found: UnrecordedFolder) -> None:
    """Delete the listed files, then the folder when nothing is left in it."""
    for rel in found.files:
        try:
            ws.abs(rel).unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue  # not ours to remove (permissions): status keeps listing it
    folder = ws.abs(found.folder)
    for dirpath, _dirs, _files in sorted(os.walk(folder), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)  # only empty ones
        except OSError:
            pass


def remove_unrecorded(ws: Workspace, manifest: Manifest, *, keep_resumable: bool = True) -> list[UnrecordedFolder]:
    """What a writing command does under the workspace lock: remove leftovers, keep resumable folders."""
    gone = []
    for found in find_unrecorded(ws, manifest):
        if keep_resumable and found.resumable_step is not None:
            continue
        remove_files(ws, found)
        gone.append(found)
    return gone


def clean_failed_run(ws: Workspace, rel_folder: str) -> UnrecordedFolder | None:
    """After a run of `rel_folder` stopped (error, Ctrl-C): remove what it wrote unless a checkpoint is resumable.

    Returns the folder's unrecorded files when they were kept (resumable), None when removed or there were none.
    """
    if not ws.abs(rel_folder).is_dir():
        return None
    found = folder_unrecorded(ws, rel_folder, _recorded(Manifest.load(ws.manifest_path)))
    if not found.files:
        return None
    if found.resumable_step is not None:
        return found
    remove_files(ws, found)
    return None

"""Files an unfinished training run left in its run folder: what a killed, interrupted or failed run wrote.

A training run writes its checkpoints, `metrics.jsonl`, `tokenizer.json` and (DPO) reference cache under their
final names in `<stage>_checkpoints/<name>/` while it runs, and the manifest records them only when it finishes.
So that those files can be told from a user's own (a checkpoint copied in by hand, which `kat eval` may read), a
run marks its folder in `.kat/unfinished/` when it starts and unmarks it once recorded. In a marked folder, every
file no run records is *unrecorded*:

- a folder whose latest step has its complete trio (model, meta, optim) is **resumable**: `--resume` continues
  exactly from it, so it is kept, whole, until that run is resumed or re-run (a fresh run clears it itself);
- every other unrecorded file is a **leftover**: `kat status` lists it and the next writing command removes it.

Unmarked folders are never touched. This module reads the manifest and lists directories; it imports no torch
(status must stay fast) and knows no training internals.
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


def _marker(ws: Workspace, rel_folder: str) -> Path:
    return ws.state_dir / "unfinished" / rel_folder


def mark(ws: Workspace, rel_folder: str, command: str) -> None:
    """Say that a run of `rel_folder` has started and is not recorded yet (under the workspace lock)."""
    path = _marker(ws, rel_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(command + "\n", encoding="utf-8")


def unmark(ws: Workspace, rel_folder: str) -> None:
    _marker(ws, rel_folder).unlink(missing_ok=True)


def _marked(ws: Workspace) -> list[str]:
    out = []
    for root in TRAINING_ROOTS:
        base = ws.state_dir / "unfinished" / root
        if base.is_dir():
            out += [f"{root}/{p.name}" for p in sorted(base.iterdir()) if p.is_file()]
    return out


def find_unrecorded(ws: Workspace, manifest: Manifest | None = None) -> list[UnrecordedFolder]:
    """Every marked (unfinished) run folder holding unrecorded files, sorted by folder."""
    if not ws.root.is_dir():
        return []
    manifest = manifest if manifest is not None else Manifest.load(ws.manifest_path)
    recorded = _recorded(manifest)
    out: list[UnrecordedFolder] = []
    for rel_folder in _marked(ws):
        folder = ws.abs(rel_folder)
        if folder.is_dir() and not folder.is_symlink():
            found = folder_unrecorded(ws, rel_folder, recorded)
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
    listed = {f.folder: f for f in find_unrecorded(ws, manifest)}
    for rel_folder in _marked(ws):
        found = listed.get(rel_folder)
        if found is not None and keep_resumable and found.resumable_step is not None:
            continue
        if found is not None:
            remove_files(ws, found)
            gone.append(found)
        unmark(ws, rel_folder)
    return gone


def clean_failed_run(ws: Workspace, rel_folder: str) -> UnrecordedFolder | None:
    """After a run of `rel_folder` stopped (error, Ctrl-C): remove what it wrote unless a checkpoint is resumable.

    Returns the folder's unrecorded files when they were kept (resumable), None when removed or there were none.
    """
    if not ws.abs(rel_folder).is_dir():
        unmark(ws, rel_folder)
        return None
    found = folder_unrecorded(ws, rel_folder, _recorded(Manifest.load(ws.manifest_path)))
    if found.files and found.resumable_step is not None:
        return found  # marked still: status lists it as resumable
    if found.files:
        remove_files(ws, found)
    unmark(ws, rel_folder)
    return None

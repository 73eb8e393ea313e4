"""Held-out prompts an `--init` model already trained on: the split leak between chained runs.

Every kat run holds out the prompts whose seeded hash falls below `--val-ratio` (`katcli.train.split`). A run started
from another kat run (`--init sft/uniform`) evaluates honestly only if none of its held-out prompts were training
prompts of the model it starts from — or of the models *that* one started from. With the same `--seed` and
`--val-ratio` (or a smaller `--val-ratio` under the same seed: a subset) there are none; with another split most
held-out prompts can be seen ones, and held-out accuracy or NLL is inflated without a sign.

`init_splits` walks the `--init` chain through the checkpoint metas (their `heldout` and `init.path` records) and
`seen_heldout` counts, per ancestor, this run's held-out prompts that ancestor's split put in training. Whether the
ancestor's pairs file actually held a prompt is not known from the meta, so the count is of prompts it *could*
have trained on; the check is exact for the common case, the same pairs file. A model with no kat split record
(an imported nanochat model, a Hugging Face model) ends the walk: its training data is not kat's to know.

This module knows checkpoint metas and the split rule; not models, flags or the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.model.run_meta import RunMeta
from katcli.train.split import is_heldout

MAX_CHAIN = 32  # a guard against a cycle of hand-edited metas, far beyond any real chain


@dataclass(frozen=True)
class TrainedSplit:
    label: str  # the run as the user would name it (its recorded path)
    seed: int
    val_ratio: float


def _last_meta(directory: Path) -> RunMeta | None:
    from katcli.model.checkpoint import checkpoint_paths, find_last_step

    try:
        return RunMeta.read(checkpoint_paths(directory, find_last_step(directory))["meta"])
    except (OSError, ValueError, KatError):  # an unreadable meta is the loader's to report; here: no record
        return None


def init_splits(init_dir: Path, label: str, resolve: Any) -> list[TrainedSplit]:
    """The splits of the `--init` model and of each model it was started from, nearest first.

    `resolve(recorded_path)` turns a meta's `init.path` (workspace-relative or absolute) into a directory."""
    out: list[TrainedSplit] = []
    seen: set[Path] = set()
    directory: Path | None = init_dir
    while directory is not None and len(out) < MAX_CHAIN:
        directory = directory.resolve()
        if directory in seen:
            break
        seen.add(directory)
        meta = _last_meta(directory)
        if meta is None or meta.split is None:
            break
        out.append(TrainedSplit(label, int(meta.split.seed), float(meta.split.val_ratio)))
        parent = meta.init_path
        if parent is None:
            break
        directory, label = resolve(parent), parent
    return out


def seen_heldout(heldout_prompts: Iterable[str], splits: Iterable[TrainedSplit]) -> list[tuple[TrainedSplit, int]]:
    """(ancestor, how many of the held-out prompts its split trained on), for each ancestor with any."""
    prompts = sorted(set(heldout_prompts))
    found = []
    for split in splits:
        n = sum(1 for p in prompts if not is_heldout(p, split.seed, split.val_ratio))
        if n:
            found.append((split, n))
    return found

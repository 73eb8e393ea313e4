"""The held-out set every stage shares: the pairs, the split, the density weights, and the agreement checks.

Training holds out the prompts whose seeded hash falls below `--val-ratio` (`katcli.train.split`); both
evaluations rebuild that set from the current pairs and the split each model recorded (`RunMeta.split`), after
checking that the models agree on it, were trained on this version of the pairs and hold out the same pairs
(fingerprint), unless `--force` (then recorded as notes). Density quintiles come from the workspace's density
weights when they are present, fresh and cover every held-out prompt. One builder, `build_heldout`; the checks are
`InputCheck` and `Agreement`.

Held-out prompts an `--init` model already trained on are the split leak between chained runs: a run started from
another kat run evaluates honestly only if none of its held-out prompts were training prompts of the model it
starts from, or of the models *that* one started from. With the same `--seed` and `--val-ratio` (or a smaller
`--val-ratio` under the same seed: a subset) there are none. `init_splits` walks the `--init` chain through the
run records (their split and `init.path`) and `seen_heldout` counts, per ancestor, this run's held-out prompts that
ancestor's split put in training: prompts it *could* have trained on (whether its pairs file held them is not
recorded), exact for the common case, the same pairs file. A model with no kat split record (an imported nanochat
model, a Hugging Face model) ends the walk.

This module knows the workspace's files and run records; not models or scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katcli.errors import KatError
from katcli.model.run_meta import RunMeta
from katcli.progress import ProgressFn, no_progress
from katcli.workspace import Workspace
from katcli.workspace import paths as P


@dataclass
class InputCheck:
    """Refuse a stale or unrecorded workspace input, or (with --force) note it and go on."""

    judge: Any
    force: bool
    notes: list[str]

    def __call__(self, rel: str) -> None:
        problem = self.judge.check_input(rel)
        if problem is not None:
            if not self.force or self.judge.current_sha(rel) is None:
                raise problem
            self.notes.append(f"forced: {problem.message}")

    def refuse(self, message: str, hint: str) -> None:
        """A mismatch that --force lets through, noted."""
        if not self.force:
            raise KatError(message, hint=hint)
        self.notes.append(f"forced: {message}")


def density_weights(ws: Workspace, judge: Any, notes: list[str], *, what: str = "no density quintiles"
                    ) -> dict[str, float] | None:
    """The workspace's density weights when present and fresh (`judge` None: not checked), else None and a note."""
    from katcli.train import inputs as I

    if not (ws.abs(P.DENSITY_WEIGHTS).is_file() and ws.abs(P.EMBED_IDS).is_file()):
        notes.append(f"no density weights in the workspace (run `kat embed`): {what}")
        return None
    if judge is not None and (judge.check_input(P.DENSITY_WEIGHTS) is not None
                              or judge.check_input(P.EMBED_IDS) is not None):
        notes.append(f"the density weights are stale or unrecorded: {what}")
        return None
    return I.read_density_weights(ws.abs(P.DENSITY_WEIGHTS), ws.abs(P.EMBED_IDS))


def covering(weights: dict[str, float] | None, prefix_ids: Sequence[str], notes: list[str], *,
             what: str = "no density quintiles") -> dict[str, float] | None:
    """The weights when they cover every held-out prompt, else None (and a note when there were weights)."""
    if weights is None:
        return None
    if not all(pid in weights for pid in prefix_ids):
        notes.append(f"the density weights do not cover every held-out prompt: {what}")
        return None
    return weights


def fresh_density_weights(ws: Workspace, judge: Any, prefix_ids: Sequence[str], notes: list[str]) -> dict | None:
    """The workspace's density weights when present, fresh and covering every prompt in `prefix_ids`.

    These are the default set's: with named sets there (`kat embed --name`), a note says the quintiles are cut on
    the default one, so arms trained on other weightings are judged on the same strata."""
    from katcli.pipeline.weight_sets import weight_set_names

    weights = covering(density_weights(ws, judge, notes), prefix_ids, notes)
    named = [n for n in weight_set_names(ws) if n != P.DEFAULT_WEIGHT_SET]
    if weights is not None and named:
        notes.append(f"density quintiles are cut on the default weight set, not on {', '.join(named)}")
    return weights


@dataclass
class HeldOutSet:
    """The pairs, their split and the held-out pairs (in split order), with the fingerprint that identifies them."""

    pairs: list[Any]
    split: Any  # katcli.train.split.Split
    seed: int
    val_ratio: float
    fingerprint: str

    @property
    def prefix_ids(self) -> list[str]:
        return [p.prefix_id for p in self.pairs]

    @property
    def held(self) -> list[Any]:
        return [self.pairs[i] for i in self.split.heldout]

    def first_per_prompt(self) -> dict[str, Any]:
        """Each held-out prompt's first pair, in split order."""
        first: dict[str, Any] = {}
        for i in self.split.heldout:
            first.setdefault(self.pairs[i].prefix_id, self.pairs[i])
        return first


def build_heldout(pairs: list[Any], seed: int, val_ratio: float) -> HeldOutSet:
    from katcli.train.split import split_pairs

    split = split_pairs([p.prefix_id for p in pairs], seed=seed, val_ratio=val_ratio)
    return HeldOutSet(pairs, split, seed, val_ratio, split.fingerprint([p.id for p in pairs]))


def read_heldout(ws: Workspace, seed: int, val_ratio: float, *, progress: ProgressFn = no_progress) -> HeldOutSet:
    from katcli.train import inputs as I

    return build_heldout(I.read_pairs(ws.abs(P.PAIRS), progress=progress), seed, val_ratio)


@dataclass
class Agreement:
    """The models an evaluation compares, by label and record, and how its messages name them."""

    models: Sequence[tuple[str, Any]]  # (label, RunMeta)
    check: InputCheck
    noun: str = "pairs"  # what a held-out set holds, in messages ("pairs", "prompts")
    retrain: Callable[[str, Any], str] = field(default=lambda label, meta: "retrain it on the current pairs")

    def split(self, disagree: Callable[[list[tuple[str, Any]]], str]) -> tuple[int, float] | None:
        """The (seed, val_ratio) every recording model shares; None when none records one."""
        recorded = [(label, m.split) for label, m in self.models if m.split is not None]
        if len({s.spec for _, s in recorded}) > 1:
            raise KatError(disagree(recorded), hint="train them with the same --seed and --val-ratio")
        return recorded[0][1].spec if recorded else None

    def same_pairs(self) -> str | None:
        """Refuse models trained on another version of the pairs; the current pairs' sha256."""
        self.check(P.PAIRS)
        pairs_sha = self.check.judge.current_sha(P.PAIRS)
        for label, meta in self.models:
            trained_on = meta.trained_on(P.PAIRS)
            if trained_on is not None and trained_on != pairs_sha:
                self.check.refuse(
                    f"{label} was trained on another version of {P.PAIRS}; its held-out {self.noun} are not these",
                    self.retrain(label, meta) + ", or pass --force")
        return pairs_sha

    def same_fingerprint(self, held: HeldOutSet, *, note: bool = True) -> None:
        """Refuse models whose recorded held-out set is not the one the current pairs give."""
        for label, meta in self.models:
            recorded = meta.split.fingerprint if meta.split is not None else None
            if recorded not in (None, held.fingerprint):
                message = f"{label}'s held-out set differs from the one the current pairs give"
                if note:
                    self.check.refuse(message, self.retrain(label, meta) + ", or pass --force")
                elif not self.check.force:
                    raise KatError(message, hint=self.retrain(label, meta) + ", or pass --force")


# ---------------------------------------------------------------------------------------------------- lineage


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
    from katcli.train.split import is_heldout

    prompts = sorted(set(heldout_prompts))
    found = []
    for split in splits:
        n = sum(1 for p in prompts if not is_heldout(p, split.seed, split.val_ratio))
        if n:
            found.append((split, n))
    return found

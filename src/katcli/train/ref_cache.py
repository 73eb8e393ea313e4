"""The frozen reference model's reply log-probs, computed once per pair and cached beside a run.

DPO needs, for every pair, the reference model's summed log-prob of the chosen and of the rejected reply. The
reference never changes during training, so kat computes them once, before training, over every encoded pair
(train and held-out), and never holds the reference model in memory while the policy trains.

On disk, in the run directory:

- `ref_logps.npy`: one structured numpy record per pair, in the encoded pairs' order: `chosen_logp`,
  `rejected_logp` (float64, summed over the reply tokens), `chosen_tokens`, `rejected_tokens` (int64, how many
  reply tokens each sum covers). Plain `.npy`, read with `allow_pickle=False`.
- `ref_logps.json`: the key the numbers were computed for — the reference weights' sha256, the pairs file's
  sha256, the tokenizer's sha256, `--max-len`, `--max-response-len` and this module's format version — plus the
  pair count and the sha256 of `ref_logps.npy` itself.

Loading checks both. A key that differs from the run's means the cache is *stale* (another reference, other pairs,
other truncation): the caller recomputes, and is told why. A `.npy` whose own sha256 differs from the one recorded
in its key file was modified after kat wrote it: that is an error, never silently recomputed or reused. Saving
removes the old key file first, then writes the array, then the new key file, each atomically, so a crash at any
point leaves either a complete cache or no key file (a cache miss), never a key describing other numbers.

The log-probs come from a `logprob_fn(micro_batch) -> (sum_logps, n_tokens)` callable over rows `[chosen…,
rejected…]`, so this module knows neither the model class nor how replies are masked; nor the workspace manifest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.train.ddp import DistContext
from katcli.train.seq_scoring import ValueFn, score_batches
from katcli.workspace import paths as P
from katcli.workspace.atomic import atomic_write, remove_quietly, write_text_atomic
from katcli.workspace.hashing import sha256_file

FORMAT_VERSION = 1
SCHEMA = "kat.ref_logps/1"
ARRAY_FILE = P.REF_CACHE_ARRAY
KEY_FILE = P.REF_CACHE_KEY
TASK = "reference log-probs"
DTYPE = np.dtype(
    [("chosen_logp", "<f8"), ("rejected_logp", "<f8"), ("chosen_tokens", "<i8"), ("rejected_tokens", "<i8")]
)

# What each key field means to a user, for "recomputing: …" notes.
_KEY_WORDS = {
    "reference_sha256": "the reference model's weights",
    "pairs_sha256": "the pairs file",
    "tokenizer_sha256": "the tokenizer",
    "max_len": "--max-len",
    "max_response_len": "--max-response-len",
    "format": "the cache format",
}


@dataclass(frozen=True)
class RefCacheKey:
    """Everything the cached numbers depend on."""

    reference_sha256: str
    pairs_sha256: str
    tokenizer_sha256: str
    max_len: int
    max_response_len: int
    format: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: dict[str, Any]) -> list[str]:
        """The user-facing names of the fields where a recorded key differs from this one."""
        mine = self.to_json()
        return [_KEY_WORDS[f.name] for f in fields(self) if other.get(f.name) != mine[f.name]]


@dataclass
class RefLogps:
    """Per pair: the reference's summed reply log-probs and the reply token counts they cover."""

    chosen: np.ndarray  # float64 [n]
    rejected: np.ndarray  # float64 [n]
    chosen_tokens: np.ndarray  # int64 [n]
    rejected_tokens: np.ndarray  # int64 [n]

    def __len__(self) -> int:
        return len(self.chosen)

    def take(self, indices: Any, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) float64 tensors of these pairs, for the loss."""
        idx = np.asarray(indices, dtype=np.int64)
        return (
            torch.from_numpy(self.chosen[idx]).to(device),
            torch.from_numpy(self.rejected[idx]).to(device),
        )

    def subset(self, indices: Any) -> RefLogps:
        """These pairs only, in this order."""
        idx = np.asarray(indices, dtype=np.int64)
        return RefLogps(self.chosen[idx], self.rejected[idx], self.chosen_tokens[idx], self.rejected_tokens[idx])

    def to_records(self) -> np.ndarray:
        rec = np.zeros(len(self), dtype=DTYPE)
        rec["chosen_logp"], rec["rejected_logp"] = self.chosen, self.rejected
        rec["chosen_tokens"], rec["rejected_tokens"] = self.chosen_tokens, self.rejected_tokens
        return rec

    @classmethod
    def from_records(cls, rec: np.ndarray) -> RefLogps:
        return cls(
            np.ascontiguousarray(rec["chosen_logp"], dtype=np.float64),
            np.ascontiguousarray(rec["rejected_logp"], dtype=np.float64),
            np.ascontiguousarray(rec["chosen_tokens"], dtype=np.int64),
            np.ascontiguousarray(rec["rejected_tokens"], dtype=np.int64),
        )


@dataclass
class CacheLookup:
    """What `load_ref_logps` found: `logps` on a hit; otherwise why the cache cannot be used."""

    logps: RefLogps | None
    state: str  # "hit", "missing" or "stale"
    reason: str = ""


# ---------------------------------------------------------------------------------------------------- compute


def compute_ref_logps(
    n_pairs: int,
    batches: Iterable[tuple[np.ndarray, Any]],
    logprob_fn: ValueFn,
    *,
    dist: DistContext | None = None,
    progress: ProgressFn = no_progress,
) -> RefLogps:
    """Reference log-probs of pairs `0 … n_pairs−1` from `(pair indices, micro-batch)` batches covering each once.

    `logprob_fn(micro_batch)` returns `(sum_logps, n_tokens)` for the batch's `2m` rows, chosen rows first. Under
    torchrun each rank computes every `world_size`-th batch and every rank ends with the same full arrays
    (`katcli.train.seq_scoring.score_batches`, the loop every reply scoring in kat runs).
    """
    dist = dist or DistContext()
    sums, counts = score_batches(
        n_pairs, 2, batches, logprob_fn, device=dist.device, dist=dist, progress=progress, task=TASK
    )
    if n_pairs and counts.min() < 1:
        raise ValueError("every reply needs at least one token")
    return RefLogps(sums[:, 0].copy(), sums[:, 1].copy(), counts[:, 0].copy(), counts[:, 1].copy())


# ---------------------------------------------------------------------------------------------------- files


def cache_files(directory: Path) -> tuple[Path, Path]:
    """(array file, key file) of the cache in a run directory."""
    return directory / ARRAY_FILE, directory / KEY_FILE


def save_ref_logps(directory: Path, key: RefCacheKey, logps: RefLogps) -> list[Path]:
    """Write the cache atomically (key file last); returns both paths."""
    array_path, key_path = cache_files(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_quietly(key_path)  # from here until the new key lands, a crash leaves a cache miss, never a mismatch
    with atomic_write(array_path, "wb") as fh:
        np.save(fh, logps.to_records(), allow_pickle=False)
    record = {
        "schema": SCHEMA,
        "key": key.to_json(),
        "pairs": len(logps),
        "array_file": ARRAY_FILE,
        "array_sha256": sha256_file(array_path),
    }
    write_text_atomic(key_path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return [array_path, key_path]


def _tampered(path: Path, what: str) -> KatError:
    return KatError(
        f"the cached reference log-probs {what}",
        file=str(path),
        hint=f"delete {path.parent / ARRAY_FILE} and {path.parent / KEY_FILE}, then re-run the same command: "
        "kat recomputes them from the reference model",
    )


def load_ref_logps(directory: Path, key: RefCacheKey, *, n_pairs: int | None = None) -> CacheLookup:
    """The cached log-probs when they were computed for `key`; a miss says why (missing or stale)."""
    array_path, key_path = cache_files(directory)
    if not key_path.is_file():
        return CacheLookup(None, "missing", f"no {KEY_FILE} in {directory}")
    try:
        record = json.loads(key_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _tampered(key_path, f"key file is unreadable ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or not isinstance(record.get("key"), dict):
        raise _tampered(key_path, f"key file is not a {SCHEMA} record")
    changed = key.differences(record["key"])
    if changed:
        return CacheLookup(None, "stale", f"{', '.join(changed)} changed since they were computed")
    if n_pairs is not None and record.get("pairs") != n_pairs:
        return CacheLookup(None, "stale", f"they cover {record.get('pairs')} pairs, not {n_pairs}")
    if not array_path.is_file():
        return CacheLookup(None, "missing", f"{ARRAY_FILE} is missing")
    if sha256_file(array_path) != record.get("array_sha256"):
        raise _tampered(array_path, f"do not match the checksum recorded in {KEY_FILE}: the file was modified")
    try:
        rec = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _tampered(array_path, f"cannot be read ({exc})") from None
    if rec.dtype != DTYPE or rec.ndim != 1 or len(rec) != record.get("pairs"):
        raise _tampered(array_path, f"have an unexpected layout ({rec.dtype}, shape {rec.shape})")
    return CacheLookup(RefLogps.from_records(rec), "hit")


def cached_or_computed(
    directory: Path,
    key: RefCacheKey,
    n_pairs: int,
    compute: Callable[[], RefLogps],
    *,
    write: bool = True,
) -> tuple[RefLogps, CacheLookup]:
    """The cache when it matches `key`, otherwise `compute()` (saved when `write`); plus what the lookup found."""
    found = load_ref_logps(directory, key, n_pairs=n_pairs)
    if found.logps is not None:
        return found.logps, found
    logps = compute()
    if len(logps) != n_pairs:
        raise ValueError(f"computed {len(logps)} reference log-probs for {n_pairs} pairs")
    if write:
        save_ref_logps(directory, key, logps)
    return logps, found

"""The one reader of `kat embed`'s row artifacts: `ids.json` and `density_weights.npy`, with one contract.

- `ids.json`: a JSON list of non-empty, distinct prefix-id strings; row i of every array belongs to `ids[i]`.
- `density_weights.npy`: a 1-D float array with one finite, *positive* weight per id (kat embed's weights are
  `(density + eps)^-power`, never 0; a zero or negative weight means the file was not written by kat).

Every consumer — training stages, `kat eval`, `kat viz` — reads through here, so a file one of them accepts is never
refused by another. Whether `ids.json` still matches `prefixes_all.jsonl` is `katcli.density.ids`. This module knows
the file formats; nothing about the workspace or what the weights are used for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from katcli.errors import KatError

REBUILD = "re-run `kat embed`"


def read_ids(path: Path) -> list[str]:
    """The id list in `ids.json`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KatError("embedding ids not found", file=str(path), hint="run `kat embed` first") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KatError(f"ids.json is not valid JSON ({exc})", file=str(path), hint=REBUILD) from None
    if not isinstance(data, list) or not all(isinstance(x, str) and x for x in data):
        raise KatError("ids.json must be a JSON list of prefix id strings", file=str(path), hint=REBUILD)
    if len(set(data)) != len(data):
        raise KatError("ids.json contains duplicate ids", file=str(path), hint=REBUILD)
    return data


def read_weights(path: Path, *, rows: int, rows_are: str) -> np.ndarray:
    """float64 `[rows]` weights; `rows_are` says where `rows` comes from, for the shape error."""
    try:
        raw = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise KatError("density weights not found", file=str(path), hint="run `kat embed` first") from None
    except (OSError, ValueError) as exc:
        raise KatError(f"density weights are not a readable .npy array: {exc}", file=str(path), hint=REBUILD) from None
    if raw.ndim != 1 or len(raw) != rows:
        raise KatError(f"density weights have shape {list(raw.shape)} but {rows_are}", file=str(path), hint=REBUILD)
    if not np.issubdtype(raw.dtype, np.floating):
        raise KatError(f"density weights must be floating point, got {raw.dtype}", file=str(path), hint=REBUILD)
    weights = raw.astype(np.float64)
    if not np.isfinite(weights).all() or (weights <= 0).any():
        raise KatError("density weights must be finite and positive", file=str(path), hint=REBUILD)
    return weights


def read_density_weights(weights_path: Path, ids_path: Path) -> dict[str, float]:
    """`{prefix_id: weight}` from the two files, which must have one entry per row."""
    ids = read_ids(ids_path)
    weights = read_weights(weights_path, rows=len(ids), rows_are=f"ids.json lists {len(ids)} prefixes")
    return {pid: float(w) for pid, w in zip(ids, weights)}

"""Is `ids.json` still the row order of `prefixes_all.jsonl`? The check every consumer of the weights runs.

Row i of `embeddings.npy` and `density_weights.npy` belongs to the prefix whose id is `ids.json[i]`, which must
be the id on the i-th (non-blank) line of `prefixes_all.jsonl`. If the prefixes were rebuilt after `kat embed`,
that mapping is silently wrong; `check_ids_match` names the first differing row, or the differing counts.
The ids themselves are read by `katcli.density.artifacts`. Streaming: memory is one line of the prefixes file plus the ids. This module knows nothing about the
workspace, the manifest or how the embeddings were made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from katcli.density.artifacts import read_ids
from katcli.errors import KatError
from katcli.workspace.jsonl import iter_json_lines

REBUILD = "the prefixes changed after `kat embed`; re-run `kat embed` so rows match prefixes again"


def check_ids_match(ids_path: Path, prefixes_path: Path) -> int:
    """Raise a KatError naming the first mismatch between ids.json and the prefixes file; else return N."""
    ids = read_ids(ids_path)
    n = len(ids)
    count = 0
    rows = iter_json_lines(prefixes_path, hint="re-run `kat prefixes`", name="prefixes file",
                           missing_hint="run `kat prefixes` first")
    for lineno, row in rows:
        pid = row.get("id") if isinstance(row, dict) else None
        if count < n and pid != ids[count]:
            raise KatError(
                f"ids.json does not match the prefixes: row {count} is {ids[count]!r} in ids.json "
                f"but {pid!r} in prefixes_all.jsonl",
                file=str(prefixes_path),
                line=lineno,
                hint=REBUILD,
            )
        count += 1
    if count != n:
        raise KatError(
            f"ids.json lists {n} prefixes but prefixes_all.jsonl has {count}",
            file=str(prefixes_path),
            hint=REBUILD,
        )
    return n


def check_embedding_rows(ids_path: Path, embeddings_path: Path, weights_path: Path) -> tuple[int, int]:
    """ids, embeddings and weights describe the same N rows; returns (N, D). Reads only the .npy headers."""
    n = len(read_ids(ids_path))
    shapes = {}
    for what, path in (("embeddings", embeddings_path), ("density weights", weights_path)):
        try:
            shapes[what] = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except FileNotFoundError:
            raise KatError(f"{what} not found", file=str(path), hint="run `kat embed` first") from None
        except (ValueError, OSError) as exc:
            raise KatError(
                f"{what} is not a readable .npy array ({exc})", file=str(path), hint="re-run `kat embed`"
            ) from None
    emb, w = shapes["embeddings"], shapes["density weights"]
    if len(emb) != 2 or emb[0] != n:
        raise KatError(
            f"embeddings have shape {list(emb)} but ids.json lists {n} prefixes",
            file=str(embeddings_path),
            hint="re-run `kat embed`",
        )
    if w != (n,):
        raise KatError(
            f"density weights have shape {list(w)} but ids.json lists {n} prefixes",
            file=str(weights_path),
            hint="re-run `kat embed`",
        )
    return n, int(emb[1])

"""Embedding matrices as kat stores them: validated `[N, D]` float32 with unit-length rows.

`load_embeddings` reads a user's `.npy` (`--embeddings-from`) and checks it against the number of prefixes;
`normalise_rows` is the one L2 normalisation every path goes through (cosine similarity = dot product).
Every problem is a `KatError` naming the file and, where one row is at fault, the row. This module knows
nothing about models, neighbours, weights or the workspace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from katcli.errors import KatError

_ROWS_PER_CHECK = 65_536


def _first_bad_row(mask_rows: np.ndarray) -> int:
    return int(np.flatnonzero(mask_rows)[0])


def check_embeddings(
    emb: np.ndarray, n_expected: int | None, *, file: str | None = None, what: str = "embeddings"
) -> None:
    """Shape [N, D] with N == n_expected, a real floating dtype, every value finite, no all-zero row."""
    hint = "the file must hold one finite, non-zero row per prefix, in prefixes_all.jsonl order"
    if emb.ndim != 2 or emb.shape[1] < 1:
        raise KatError(f"{what} must be a 2-D array [N, D], got shape {list(emb.shape)}", file=file, hint=hint)
    if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise KatError(f"{what} must hold numbers, got dtype {emb.dtype}", file=file, hint=hint)
    if n_expected is not None and emb.shape[0] != n_expected:
        raise KatError(
            f"{what} have {emb.shape[0]} rows but there are {n_expected} prefixes",
            file=file,
            hint="row i must be the embedding of line i of data/prefixes_all.jsonl; re-export them for these prefixes",
        )
    for start in range(0, emb.shape[0], _ROWS_PER_CHECK):
        block = np.asarray(emb[start : start + _ROWS_PER_CHECK], dtype=np.float64)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise KatError(f"{what} row {start + _first_bad_row(bad)} contains NaN or infinity", file=file, hint=hint)
        zero = ~(block != 0).any(axis=1)
        if zero.any():
            raise KatError(
                f"{what} row {start + _first_bad_row(zero)} is all zeros (cosine similarity is undefined)",
                file=file,
                hint=hint,
            )


def normalise_rows(emb: np.ndarray) -> np.ndarray:
    """float32 copy with every row scaled to unit L2 norm (norms computed in float64)."""
    out = np.empty(emb.shape, dtype=np.float32)
    for start in range(0, emb.shape[0], _ROWS_PER_CHECK):
        block = np.asarray(emb[start : start + _ROWS_PER_CHECK], dtype=np.float64)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def load_embeddings(path: Path, n_expected: int) -> np.ndarray:
    """A user's `[N, D]` .npy, validated against the prefix count and L2-normalised to float32."""
    hint = "save it with numpy.save(path, array) — a plain numeric [N, D] array, no pickled objects"
    try:
        # Without numpy's magic, np.load tries to unpickle the file and blames "pickled (object) data".
        with open(path, "rb") as fh:
            head = fh.read(6)
        if head != b"\x93NUMPY" and not head.startswith(b"PK"):  # PK: an .npz archive, refused below
            raise KatError("not a .npy file: it does not start with numpy's magic bytes (\\x93NUMPY)",
                           file=str(path), hint=hint)
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise KatError(
            "embeddings file not found", file=str(path), hint="pass an existing .npy with --embeddings-from"
        ) from None
    except IsADirectoryError:
        raise KatError("--embeddings-from must be a .npy file, not a directory", file=str(path)) from None
    except (ValueError, OSError, EOFError) as exc:
        raise KatError(f"not a readable .npy array ({exc})", file=str(path), hint=hint) from None
    if not isinstance(raw, np.ndarray):
        raise KatError(
            "expected one array in a .npy file (got an archive)", file=str(path), hint="use numpy.save, not savez"
        )
    check_embeddings(raw, n_expected, file=str(path))
    return normalise_rows(raw)

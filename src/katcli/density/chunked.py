"""Encode many texts in chunks that survive interruption, so a re-run resumes instead of starting over.

Texts are ordered by length (longest first, stable — as `SentenceTransformer.encode` orders each call, but
across the whole input, so batches pad as little as possible), cut into chunks of `chunk_size`, and each
chunk's `[rows, D]` float32 result is saved atomically as `chunk_NNNNNN.npy` in a scratch directory beside a
`state.json` that holds a key of everything that determines the bytes (model, device, batch size, chunk size,
text mode, the texts themselves). A re-run with the same key loads the completed chunks and encodes only the
rest; because chunk boundaries and batches are the same, the result is byte-identical to an uninterrupted run.
A different key discards the old chunks.

The encoder is any `texts -> [len, D] float32` callable; this module knows nothing about models, the
workspace layout or what the embeddings are for.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.atomic import atomic_write, write_text_atomic

STATE_FILE = "state.json"
_FORMAT = "kat-encode-chunks/1"


def length_order(texts: list[str]) -> np.ndarray:
    """Row order for encoding: longest text first; equal lengths keep their input order."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return np.argsort(-lengths, kind="stable")


def _chunk_path(directory: Path, i: int) -> Path:
    return directory / f"chunk_{i:06d}.npy"


def _load_state(directory: Path) -> dict | None:
    try:
        return json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def clear_chunks(directory: Path) -> None:
    """Remove the scratch directory and everything kat put in it."""
    shutil.rmtree(directory, ignore_errors=True)


def _load_chunk(path: Path, rows: int, dim: int | None) -> np.ndarray | None:
    """A saved chunk if it is complete and well-formed, else None (it will be re-encoded)."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[0] != rows or (dim is not None and arr.shape[1] != dim):
        return None
    if not np.isfinite(arr).all():
        return None
    return arr


def encode_resumable(
    encode: Callable[[list[str]], np.ndarray],
    texts: list[str],
    *,
    key: str,
    scratch: Path | None,
    chunk_size: int,
    progress: ProgressFn = no_progress,
    task: str = "encode",
) -> tuple[np.ndarray, int]:
    """All texts' embeddings `[N, D]` float32 in input order, and how many rows were resumed from `scratch`.

    `scratch=None` encodes without saving chunks. `progress(task, rows_done, N)` is called after each chunk
    is safely on disk, so an exception raised from it (or Ctrl-C) loses no completed chunk.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    n = len(texts)
    if n == 0:
        raise ValueError("nothing to encode")
    order = length_order(texts)
    n_chunks = (n + chunk_size - 1) // chunk_size
    state = {"format": _FORMAT, "key": key, "n": n, "chunk_size": chunk_size, "chunks": n_chunks}

    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        if _load_state(scratch) != state:
            clear_chunks(scratch)
            scratch.mkdir(parents=True, exist_ok=True)
            write_text_atomic(scratch / STATE_FILE, json.dumps(state, sort_keys=True))

    out: np.ndarray | None = None
    resumed = 0
    for i in range(n_chunks):
        rows = order[i * chunk_size : (i + 1) * chunk_size]
        dim = None if out is None else out.shape[1]
        # A chunk's bytes depend only on its own texts (and the key), so any complete one can be reused.
        chunk = _load_chunk(_chunk_path(scratch, i), len(rows), dim) if scratch is not None else None
        if chunk is not None:
            resumed += len(rows)
        else:
            chunk = np.asarray(encode([texts[j] for j in rows]), dtype=np.float32)
            if chunk.ndim != 2 or chunk.shape[0] != len(rows) or (dim is not None and chunk.shape[1] != dim):
                raise KatError(f"the encoder returned shape {list(chunk.shape)} for {len(rows)} texts")
            if not np.isfinite(chunk).all():
                raise KatError("the encoder produced NaN or infinite values", hint="try --device cpu or another model")
            if scratch is not None:
                with atomic_write(_chunk_path(scratch, i)) as fh:
                    np.save(fh, chunk, allow_pickle=False)
        if out is None:
            out = np.empty((n, chunk.shape[1]), dtype=np.float32)
        out[rows] = chunk
        progress(task, min(n, (i + 1) * chunk_size), n)
    return out, resumed  # type: ignore[return-value]  # n >= 1, so at least one chunk ran

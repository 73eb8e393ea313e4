"""Read and cross-check what the viz page is drawn from.

Inputs (written by `kat embed` and `kat prefixes`):
- `embeddings.npy` [N, D] float — memory-mapped, never copied whole;
- `density_weights.npy` [N] — positive, summing to 1 (rare prompts weigh more);
- `ids.json` — the prefix ids in row order;
- `embeddings_metadata.json` — how the weights were made (eps, power, …);
- `prefixes_all.jsonl` — `{"id", "prefix": {"messages": [...]}, "n_pairs", "srcs"}` per line, in the same
  order as `ids.json`.

Every inconsistency (shapes, non-finite values, an id order that differs from the prefixes file) is a
`KatError` naming the file, the line where it is known, and the command that rebuilds it. This module knows
nothing about the workspace or manifest (the pipeline has already checked the files are current), nor about
projections or HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from katcli.density.artifacts import read_ids, read_weights
from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.jsonl import iter_json_lines

#: Characters of prompt text kept per point; the page truncates further for its tooltip.
TEXT_CHARS = 300
_REBUILD_EMBED = "re-run `kat embed` to rebuild the embeddings, weights and ids together"
_USER_ROLES = ("user", "human")


@dataclass(frozen=True)
class EmbeddingInputs:
    embeddings: np.ndarray  # [N, D], usually a read-only memmap
    weights: np.ndarray  # float64 [N]
    ids: list[str]  # prefix ids, row order
    metadata: dict[str, Any]

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Prompt:
    text: str  # the first user message, truncated to TEXT_CHARS
    src: str  # the prefix's source(s), "+"-joined when it occurs in several


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise KatError(f"{what} not found", file=str(path), hint="run `kat embed` first") from None
    except ValueError as exc:
        raise KatError(f"{what} is not a readable .npy array: {exc}", file=str(path), hint=_REBUILD_EMBED) from None


def _load_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KatError(f"{what} not found", file=str(path), hint="run `kat embed` first") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KatError(
            f"{what} is not valid JSON: {exc.msg}", file=str(path), line=exc.lineno, hint=_REBUILD_EMBED
        ) from None


def _all_finite(x: np.ndarray, chunk_rows: int = 65536) -> bool:
    return all(np.isfinite(x[s : s + chunk_rows]).all() for s in range(0, x.shape[0], chunk_rows))


def load_embedding_inputs(
    embeddings_path: Path,
    weights_path: Path,
    ids_path: Path,
    metadata_path: Path,
) -> EmbeddingInputs:
    """Load the embed stage's four files and check they describe the same N rows."""
    emb = _load_npy(embeddings_path, "embeddings")
    if emb.ndim != 2 or emb.shape[0] < 1 or emb.shape[1] < 1:
        raise KatError(
            f"embeddings must be a non-empty [N, D] array, got shape {list(emb.shape)}",
            file=str(embeddings_path),
            hint=_REBUILD_EMBED,
        )
    if not np.issubdtype(emb.dtype, np.floating):
        raise KatError(
            f"embeddings must be floating point, got {emb.dtype}", file=str(embeddings_path), hint=_REBUILD_EMBED
        )
    if not _all_finite(emb):
        raise KatError("embeddings contain NaN or infinite values", file=str(embeddings_path), hint=_REBUILD_EMBED)

    ids = read_ids(ids_path)
    if len(ids) != emb.shape[0]:
        raise KatError(
            f"ids.json lists {len(ids)} ids but the embeddings have {emb.shape[0]} rows",
            file=str(ids_path),
            hint=_REBUILD_EMBED,
        )
    weights = read_weights(weights_path, rows=emb.shape[0], rows_are=f"the embeddings have {emb.shape[0]} rows")

    metadata = _load_json(metadata_path, "embeddings metadata")
    if not isinstance(metadata, dict):
        raise KatError("embeddings metadata must be a JSON object", file=str(metadata_path), hint=_REBUILD_EMBED)
    return EmbeddingInputs(embeddings=emb, weights=weights, ids=ids, metadata=metadata)


def prompt_text(messages: Any) -> str | None:
    """The first user message's content (else the first non-empty message), or None if there is none."""
    if not isinstance(messages, list):
        return None
    fallback: str | None = None
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if not isinstance(content, str):
            continue
        content = content.strip()
        if not content:
            continue
        if str(msg.get("role", "")).lower() in _USER_ROLES:
            return content
        if fallback is None:
            fallback = content
    return fallback


def truncate(text: str, limit: int = TEXT_CHARS) -> str:
    """At most `limit` characters, ending in an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def source_label(srcs: Any) -> str:
    if isinstance(srcs, str):
        srcs = [srcs]
    if not isinstance(srcs, list) or not srcs:
        return "unknown"
    return "+".join(sorted({str(s) for s in srcs}))


def read_prompts(
    prefixes_path: Path,
    ids: list[Any],
    rows: np.ndarray,
    *,
    progress: ProgressFn = no_progress,
) -> dict[int, Prompt]:
    """Text and source for each row in `rows`, checking that the file's ids are exactly `ids`, in order.

    The whole file is streamed (to verify the order) but only the wanted rows' text is kept.
    """
    wanted = {int(r) for r in rows}
    out: dict[int, Prompt] = {}
    n = len(ids)
    count = 0
    rows = iter_json_lines(prefixes_path, hint="re-run `kat prefixes`", name="prefixes file",
                           missing_hint="run `kat prefixes` first")
    for lineno, row in rows:
        if not isinstance(row, dict) or "id" not in row:
            raise KatError(
                "a prefix row must be an object with an \"id\"",
                file=str(prefixes_path),
                line=lineno,
                hint="re-run `kat prefixes`",
            )
        i = count
        count += 1
        if i >= n:
            continue  # counted, reported below with the totals
        if row["id"] != ids[i]:
            raise KatError(
                f"ids.json does not match prefixes_all.jsonl: row {i} is {ids[i]!r} in ids.json "
                f"but {row['id']!r} here",
                file=str(prefixes_path),
                line=lineno,
                hint=_REBUILD_EMBED,
            )
        if i in wanted:
            prefix = row.get("prefix")
            messages = prefix.get("messages") if isinstance(prefix, dict) else None
            text = prompt_text(messages)
            if text is None:
                raise KatError(
                    "prefix has no message with text",
                    file=str(prefixes_path),
                    line=lineno,
                    hint="re-run `kat prefixes`",
                )
            out[i] = Prompt(text=truncate(text), src=source_label(row.get("srcs")))
        if count % 10000 == 0:
            progress("prompts", count, n)
    if count != n:
        raise KatError(
            f"prefixes_all.jsonl has {count} prefixes but ids.json lists {n}",
            file=str(prefixes_path),
            hint=_REBUILD_EMBED,
        )
    progress("prompts", count, n)
    return out

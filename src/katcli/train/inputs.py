"""Reading what every training objective and both evaluations consume: pairs, per-prefix pair counts, density weights.

`read_pairs` parses `data/pairs_all.jsonl` into compact `Pair` rows; `read_prefix_counts` reads the `n_pairs`
of every prefix in `data/prefixes_all.jsonl`; `read_density_weights` (re-exported from `katcli.density.artifacts`,
the one reader of those files) maps prefix ids to their weight. `check_consistency` refuses pairs and prefixes that disagree. Every bad line
becomes a `KatError` naming the file and line.

This module knows the file formats and nothing about tokenizers, sampling, models or the manifest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.density.artifacts import read_density_weights
from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.jsonl import iter_json_lines

__all__ = ["Pair", "check_consistency", "read_density_weights", "read_pairs", "read_prefix_counts"]

_PAIR_FIELDS = ("id", "prefix", "chosen", "rejected", "src", "prefix_id")


@dataclass(frozen=True)
class Pair:
    """One preference pair as training needs it (the `meta` and `split` fields are not kept)."""

    id: str
    messages: tuple[Mapping[str, Any], ...]
    chosen: str
    rejected: str
    src: str
    prefix_id: str


def _bad(message: str, path: Path, line: int, hint: str) -> KatError:
    return KatError(message, file=str(path), line=line, hint=hint)


def read_pairs(path: Path, *, progress: ProgressFn = no_progress) -> list[Pair]:
    """Every pair of a `pairs_all.jsonl`, in file order."""
    hint = "re-create it with `kat pairs download` or `kat pairs import`"
    pairs: list[Pair] = []
    for lineno, row in iter_json_lines(path, hint=hint):
        if not isinstance(row, dict):
            raise _bad("pair line is not a JSON object", path, lineno, hint)
        missing = [f for f in _PAIR_FIELDS if f not in row]
        if missing:
            raise _bad(f"pair has no {', '.join(missing)} field", path, lineno, hint)
        prefix = row["prefix"]
        messages = prefix.get("messages") if isinstance(prefix, dict) else None
        if not isinstance(messages, list) or not messages:
            raise _bad("pair prefix has no messages", path, lineno, hint)
        for name in ("id", "chosen", "rejected", "src", "prefix_id"):
            if not isinstance(row[name], str):
                raise _bad(f"pair field {name} must be a string", path, lineno, hint)
        pairs.append(
            Pair(row["id"], tuple(messages), row["chosen"], row["rejected"], row["src"], row["prefix_id"])
        )
        if len(pairs) % 10000 == 0:
            progress("reading pairs", len(pairs), None)
    progress("reading pairs", len(pairs), len(pairs))
    if not pairs:
        raise KatError("there are no pairs to train on", file=str(path), hint="run `kat pairs download` first")
    return pairs


def read_prefix_counts(path: Path) -> dict[str, int]:
    """`{prefix_id: n_pairs}` from `prefixes_all.jsonl`."""
    hint = "re-run `kat prefixes`"
    counts: dict[str, int] = {}
    for lineno, row in iter_json_lines(path, hint=hint):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise _bad("prefix line has no string id", path, lineno, hint)
        n = row.get("n_pairs")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _bad("prefix n_pairs must be a positive integer", path, lineno, hint)
        if row["id"] in counts:
            raise _bad(f"prefix id {row['id']} appears twice", path, lineno, hint)
        counts[row["id"]] = n
    return counts


def check_consistency(pairs: list[Pair], prefix_counts: Mapping[str, int], *, prefixes_file: str) -> None:
    """Pairs and prefixes must describe the same prompts with the same pair counts."""
    seen = Counter(p.prefix_id for p in pairs)
    unknown = sorted(set(seen) - set(prefix_counts))
    if unknown:
        raise KatError(
            f"{len(unknown)} of {len(seen)} prefix ids in the pairs are not in the prefixes file "
            f"(e.g. {unknown[0]})",
            file=prefixes_file,
            hint="re-run `kat prefixes` so it matches the current pairs",
        )
    wrong = sorted(pid for pid, n in seen.items() if prefix_counts[pid] != n)
    if wrong:
        pid = wrong[0]
        raise KatError(
            f"{len(wrong)} prefixes have a different n_pairs than the pairs file "
            f"(e.g. {pid}: {prefix_counts[pid]} recorded, {seen[pid]} pairs)",
            file=prefixes_file,
            hint="re-run `kat prefixes` so it matches the current pairs",
        )

"""Per-source accounting for `kat pairs download`: rows read, pairs kept, drops by reason, mean lengths.

One `SourceStats` per source is filled while reading; `to_json()` is what goes into the manifest
(`run.stats`) and `format_pairs_stats()` renders the same numbers as the `[pairs]` section of
`data/stats.txt`. The CLI draws its Rich summary from `to_json()` too, so the three never disagree.
Deterministic text (no timestamps, fixed float formatting). No I/O here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from katcli.data.schema import SOURCES


@dataclass
class SourceStats:
    source: str
    origin: str = ""
    rows_read: int = 0
    pairs_valid: int = 0  # parsed into a valid pair (before the budget)
    pairs_kept: int = 0
    share: int = 0  # pairs the budget allocated to this source
    over_budget: int = 0  # valid pairs read but not taken
    dropped: Counter = field(default_factory=Counter)
    kept_by_group: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    _prefix_chars: int = 0
    _chosen_chars: int = 0
    _rejected_chars: int = 0
    _messages: int = 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def keep(self, group: str, prefix_chars: int, n_messages: int, chosen_chars: int, rejected_chars: int) -> None:
        self.pairs_kept += 1
        self.kept_by_group[group] += 1
        self._prefix_chars += prefix_chars
        self._messages += n_messages
        self._chosen_chars += chosen_chars
        self._rejected_chars += rejected_chars

    def _mean(self, total: int) -> float:
        return round(total / self.pairs_kept, 1) if self.pairs_kept else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "rows_read": self.rows_read,
            "pairs_valid": self.pairs_valid,
            "pairs_kept": self.pairs_kept,
            "share": self.share,
            "over_budget": self.over_budget,
            "dropped": {k: self.dropped[k] for k in sorted(self.dropped)},
            "dropped_total": sum(self.dropped.values()),
            "mean_prompt_chars": self._mean(self._prefix_chars),
            "mean_chosen_chars": self._mean(self._chosen_chars),
            "mean_rejected_chars": self._mean(self._rejected_chars),
            "mean_prompt_messages": self._mean(self._messages),
            "kept_by_group": {k: self.kept_by_group[k] for k in sorted(self.kept_by_group)},
            "missing": list(self.missing),
        }


def ordered_sources(by_source: dict[str, Any]) -> list[tuple[str, Any]]:
    """Items in the canonical source order (the manifest stores keys sorted alphabetically)."""
    rank = {name: i for i, name in enumerate(SOURCES)}
    return sorted(by_source.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def format_pairs_stats(summary: dict[str, Any]) -> str:
    """The `[pairs]` section of data/stats.txt from the stats dict that also goes to the manifest."""
    lines = ["[pairs]"]
    for key in ("budget", "mix", "seed", "origin", "pairs_total"):
        if key in summary:
            lines.append(f"{key}: {summary[key]}")
    for name, s in ordered_sources(summary.get("sources", {})):
        lines.append("")
        lines.append(f"source: {name}")
        for key in (
            "origin", "rows_read", "pairs_valid", "share", "pairs_kept", "over_budget", "dropped_total",
            "mean_prompt_chars", "mean_chosen_chars", "mean_rejected_chars", "mean_prompt_messages",
        ):
            value = s[key]
            lines.append(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
        for reason, n in s["dropped"].items():
            lines.append(f"  dropped.{reason}: {n}")
        for group, n in s["kept_by_group"].items():
            lines.append(f"  kept.{group}: {n}")
        if s["missing"]:
            lines.append(f"  missing: {', '.join(s['missing'])}")
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def format_import_stats(summary: dict[str, Any]) -> str:
    """The `[pairs]` section of data/stats.txt after `kat pairs import`."""
    lines = ["[pairs]", "origin: import"]
    lines += [f"file: {f}" for f in summary["files"]]
    for key in ("lines_read", "pairs_written", "invalid"):
        lines.append(f"{key}: {summary[key]}")
    for src, n in summary["by_src"].items():
        lines.append(f"pairs.{src}: {n}")
    for split, n in summary["by_split"].items():
        lines.append(f"split.{split}: {n}")
    for bad in summary["first_invalid"]:
        lines.append(f"invalid: {bad['file']}:{bad['line']}: {bad['reason']}")
    return "\n".join(lines) + "\n"


def format_pairs_section(stats: dict[str, Any]) -> str:
    """The `[pairs]` section for whichever command produced the pairs (its manifest stats)."""
    if stats.get("kind") == "import":
        return format_import_stats(stats)
    return format_pairs_stats(stats)

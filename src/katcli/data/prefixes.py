"""Dedupe pairs into unique conversation prefixes, streaming: memory grows with prefixes, not pairs.

Pass 1 reads `pairs_all.jsonl` line by line and writes `prefix_id_map.tsv` (pair id → prefix id) as it
goes, keeping per unique prefix only a few numbers: the byte offset of its first pair, its pair count,
its sources (a bitmask) and its number of user turns. Pass 2 re-reads the file sequentially and, at each
first-occurrence offset, writes that pair's prefix to `prefixes_all.jsonl`:
`{"id": prefix_id, "prefix": {...}, "n_pairs", "srcs"}`, in order of first appearance.

The dedupe key is the pair's `prefix_id` (see `keys.py`). Writes to caller-owned binary handles (the
pipeline makes them atomic). Knows nothing about the workspace, manifest or CLI.
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from json.decoder import scanstring
from typing import Any, BinaryIO

from katcli.errors import KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.jsonl import where_in_line

MAP_HEADER = b"pair_id\tprefix_id\n"
_TICK = 20_000


@dataclass
class PrefixReport:
    pairs: int = 0
    unique: int = 0
    pairs_by_src: Counter = field(default_factory=Counter)
    prefixes_by_src: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)  # user turns per unique prefix
    multi_source: int = 0  # prefixes that occur in pairs from more than one source
    max_pairs_per_prefix: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "unique_prefixes": self.unique,
            "dedup_ratio": round(self.unique / self.pairs, 4) if self.pairs else 0.0,
            "pairs_per_prefix": round(self.pairs / self.unique, 3) if self.unique else 0.0,
            "max_pairs_per_prefix": self.max_pairs_per_prefix,
            "multi_source_prefixes": self.multi_source,
            "pairs_by_src": {k: self.pairs_by_src[k] for k in sorted(self.pairs_by_src)},
            "prefixes_by_src": {k: self.prefixes_by_src[k] for k in sorted(self.prefixes_by_src)},
            "turns_histogram": {str(k): self.turns[k] for k in sorted(self.turns)},
        }


PAIRS_HINT = "re-create it with `kat pairs download` or `kat pairs import`"


def _bad(reason: str, path: Path, lineno: int) -> KatError:
    return KatError(reason, file=str(path), line=lineno, hint=PAIRS_HINT)


def _reason(exc: Exception) -> str:
    """A broken line's reason in the words of the one JSONL reader (`katcli.workspace.jsonl`)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {where_in_line(exc)}"
    if isinstance(exc, UnicodeDecodeError):
        return f"the file is not valid UTF-8 ({exc.reason})"
    if isinstance(exc, KeyError):
        return f"not a valid pair: no {exc.args[0]} field"
    return f"not a valid pair: {exc}"


_scan_value = json.JSONDecoder().scan_once
_HEX16 = re.compile(r"[0-9a-f]{16}")
_WS = " \t\r\n"
_FLUSH = 1024  # lines buffered before a write (bounded: memory must not grow with pairs)


def raw_value(text: str, key: str) -> str:
    """The JSON text of top-level `key`'s value in the object `text`, exactly as written (no re-encoding).

    Walks the object with the json module's C scanner; raises ValueError/KeyError like json.loads would.
    """
    i = text.index("{") + 1
    n = len(text)
    while i < n:
        while text[i] in _WS:
            i += 1
        if text[i] == "}":
            break
        name, i = scanstring(text, i + 1)
        while text[i] in _WS:
            i += 1
        if text[i] != ":":
            raise ValueError(f"expected ':' at column {i + 1}")
        i += 1
        while text[i] in _WS:
            i += 1
        start = i
        _, i = _scan_value(text, i)
        if name == key:
            return text[start:i]
        while text[i] in _WS:
            i += 1
        if text[i] == ",":
            i += 1
    raise KeyError(key)


def build_prefixes(
    pairs_path: Path, prefixes_out: BinaryIO, map_out: BinaryIO, *, progress: ProgressFn = no_progress
) -> PrefixReport:
    total_bytes = pairs_path.stat().st_size
    index: dict[str, int] = {}  # prefix_id -> slot
    pids: list[str] = []  # slot -> prefix_id (the same string objects as the dict keys)
    first_offset = array("q")
    n_pairs = array("q")
    turns = array("l")
    src_mask: list[int] = []
    src_bit: dict[str, int] = {}
    pairs_by_src: Counter = Counter()
    report = PrefixReport()
    task = "dedupe prefixes"
    loads, fullmatch = json.loads, _HEX16.fullmatch

    map_out.write(MAP_HEADER)
    buf: list[str] = []
    offset = 0
    lineno = 0
    with open(pairs_path, "rb") as fh:
        for line in fh:
            lineno += 1
            here = offset
            offset += len(line)
            try:
                pair = loads(line.decode("utf-8"))
                pid, pair_id, src = pair["prefix_id"], pair["id"], pair["src"]
                messages = pair["prefix"]["messages"]
            except (ValueError, KeyError, TypeError) as exc:
                if not line.strip():
                    continue
                raise _bad(_reason(exc), pairs_path, lineno) from None
            if type(pid) is not str or not fullmatch(pid) or type(pair_id) is not str or type(src) is not str:
                raise _bad("not a valid pair: bad id, prefix_id or src", pairs_path, lineno)
            buf.append(f"{pair_id}\t{pid}\n")
            if len(buf) >= _FLUSH:
                map_out.write("".join(buf).encode("utf-8"))
                buf.clear()
                progress(task, offset, total_bytes)
            bit = src_bit.get(src)
            if bit is None:
                bit = src_bit[src] = 1 << len(src_bit)
            pairs_by_src[bit] += 1
            slot = index.get(pid)
            if slot is None:
                index[pid] = len(first_offset)
                pids.append(pid)
                first_offset.append(here)
                n_pairs.append(1)
                turns.append(sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "user"))
                src_mask.append(bit)
            else:
                n_pairs[slot] += 1
                src_mask[slot] |= bit
    map_out.write("".join(buf).encode("utf-8"))
    progress(task, total_bytes, total_bytes)

    names = sorted(src_bit, key=src_bit.__getitem__)
    report.pairs = sum(n_pairs)
    report.pairs_by_src = Counter({name: pairs_by_src[src_bit[name]] for name in names})
    report.unique = len(first_offset)
    report.turns = Counter(turns)
    report.max_pairs_per_prefix = max(n_pairs, default=0)
    srcs_json: dict[int, str] = {}  # source bitmask -> its JSON list, computed once per combination
    for mask in src_mask:
        if mask not in srcs_json:
            srcs_json[mask] = json.dumps(sorted(n for n in names if mask & src_bit[n]), ensure_ascii=False)
    for mask in src_mask:
        if mask & (mask - 1):
            report.multi_source += 1
        for name in names:
            if mask & src_bit[name]:
                report.prefixes_by_src[name] += 1
    index.clear()  # pass 2 needs only the slots, in offset order

    # Pass 2: each prefix's JSON is copied verbatim from its first pair's line (no decode/re-encode).
    task = "write prefixes"
    out: list[str] = []
    with open(pairs_path, "rb") as fh:
        for slot, off in enumerate(first_offset):
            fh.seek(off)
            text = fh.readline().decode("utf-8")
            out.append(
                f'{{"id":"{pids[slot]}","prefix":{raw_value(text, "prefix")},"n_pairs":{n_pairs[slot]},'
                f'"srcs":{srcs_json[src_mask[slot]]}}}\n'
            )
            if len(out) >= _FLUSH:
                prefixes_out.write("".join(out).encode("utf-8"))
                out.clear()
                progress(task, slot, report.unique)
    prefixes_out.write("".join(out).encode("utf-8"))
    progress(task, report.unique, report.unique)
    return report


def format_prefix_stats(stats: dict[str, Any]) -> str:
    """The `[prefixes]` section of data/stats.txt (deterministic)."""
    lines = [
        "[prefixes]",
        f"pairs: {stats['pairs']}",
        f"unique_prefixes: {stats['unique_prefixes']}",
        f"dedup_ratio: {stats['dedup_ratio']:.4f}  (unique prefixes / pairs)",
        f"pairs_per_prefix: {stats['pairs_per_prefix']:.3f}",
        f"max_pairs_per_prefix: {stats['max_pairs_per_prefix']}",
        f"multi_source_prefixes: {stats['multi_source_prefixes']}",
    ]
    for src, n in stats["pairs_by_src"].items():
        lines.append(f"pairs.{src}: {n}")
    for src, n in stats["prefixes_by_src"].items():
        lines.append(f"prefixes.{src}: {n}")
    lines.append("turns_histogram (user turns per unique prefix):")
    width = max((len(k) for k in stats["turns_histogram"]), default=1)
    peak = max(stats["turns_histogram"].values(), default=1)
    for turns, n in stats["turns_histogram"].items():
        bar = "#" * max(1, round(40 * n / peak)) if n else ""
        lines.append(f"  {turns:>{width}}: {n:>8}  {bar}")
    return "\n".join(lines) + "\n"

"""The pair record: its fields, how a prefix is normalised, and the one byte encoding of a pair line.

A line of `data/pairs_all.jsonl` is
`{"id", "prefix": {"messages": [{"role", "content"}, ...]}, "chosen", "rejected", "src", "split",
"prefix_id", "meta"}` — keys in that order, compact JSON, UTF-8, one `\\n` per line — so a re-run with the
same inputs writes the same bytes. A prefix alternates user/assistant, starts and ends with a user message
and has no empty message; texts are stripped at both ends and otherwise keep their whitespace.

Source parsers *repair* what the real datasets do (merge consecutive same-role turns, drop empty turns) and
report a drop reason when no valid prefix remains; the importer *validates* instead (see `validate`).
This module knows no source formats, files or workspace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from katcli.data.keys import prefix_id

HH = "hh-rlhf"
UF = "ultrafeedback-binarized"
SE = "stack-exchange-preferences"
#: Canonical order of the downloadable sources (output order, summaries).
SOURCES: tuple[str, ...] = (HH, UF, SE)
#: The short names the CLI accepts for `--source` and in `--mix`.
SHORT_NAMES: dict[str, str] = {"hh": HH, "uf": UF, "se": SE}
#: A source's short name (its label in narrow tables), the inverse of SHORT_NAMES.
SHORT_OF: dict[str, str] = {full: short for short, full in SHORT_NAMES.items()}

ROLES = ("user", "assistant")
SPLITS = ("train", "test")

# Drop reasons shared by the source parsers (each parser adds its own where a source has more).
EMPTY_PROMPT = "empty_prompt"
PROMPT_NOT_STARTING_WITH_USER = "prompt_not_starting_with_user"
PROMPT_NOT_ENDING_WITH_USER = "prompt_not_ending_with_user"
EMPTY_REPLY = "empty_reply"
IDENTICAL_REPLIES = "identical_replies"


class Drop(Exception):
    """A source row that yields no pair; `reason` is the counted drop reason (snake_case)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_type(value: object) -> str:
    """A value's type as JSON names it ("a string", "an array", ...), for messages about wrong types."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def normalize_turns(turns: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Strip every turn, drop empty ones and merge consecutive same-role turns with a blank line.

    Real transcripts contain both (two Assistant turns in a row, an empty Human turn); merging keeps
    every word while restoring strict alternation.
    """
    out: list[dict[str, str]] = []
    for role, content in turns:
        text = content.strip()
        if not text:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    return out


def check_prefix(messages: list[dict[str, str]]) -> None:
    """Raise `Drop` unless the (normalised) prefix starts and ends with a user message."""
    if not messages:
        raise Drop(EMPTY_PROMPT)
    if messages[0]["role"] != "user":
        raise Drop(PROMPT_NOT_STARTING_WITH_USER)
    if messages[-1]["role"] != "user":
        raise Drop(PROMPT_NOT_ENDING_WITH_USER)


def check_replies(chosen: str, rejected: str) -> tuple[str, str]:
    """Stripped replies, or `Drop` when one is empty or both are the same text."""
    c, r = chosen.strip(), rejected.strip()
    if not c or not r:
        raise Drop(EMPTY_REPLY)
    if c == r:
        raise Drop(IDENTICAL_REPLIES)
    return c, r


def make_pair(
    *,
    pair_id: str,
    messages: list[dict[str, str]],
    chosen: str,
    rejected: str,
    src: str,
    split: str,
    meta: Mapping[str, Any],
    pid: str | None = None,
) -> dict[str, Any]:
    """A pair record with keys in the canonical order (the order is part of the byte format)."""
    return {
        "id": pair_id,
        "prefix": {"messages": messages},
        "chosen": chosen,
        "rejected": rejected,
        "src": src,
        "split": split,
        "prefix_id": pid if pid is not None else prefix_id(messages),
        "meta": dict(meta),
    }


def encode_line(obj: Any) -> bytes:
    """One compact JSONL line (with its newline) as UTF-8 bytes.

    Text is written unescaped for readability; a string holding an unpaired surrogate (which UTF-8 cannot
    carry, and which a few scraped rows do contain) falls back to `\\u` escapes for that line only.
    """
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return (line + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def encode_pair(pair: Mapping[str, Any]) -> bytes:
    """A pair's line in `pairs_all.jsonl` (keys in the order `make_pair` gives them)."""
    return encode_line(pair)


def text_chars(messages: list[dict[str, str]]) -> int:
    """Characters in a prefix's messages (for the mean-length statistics)."""
    return sum(len(m["content"]) for m in messages)

"""Rows in TRL's preference format (or mapped onto it by `--columns`) → (prefix messages, chosen, rejected).

TRL's format has `chosen` and `rejected`, and optionally `prompt`; each is plain text ("standard") or a list
of `{"role", "content"}` messages ("conversational"). The four forms become kat pairs by the rules of the
built-in sources:

- conversational, implicit prompt (`chosen`/`rejected` are whole conversations): UltraFeedback's rule
  (`conversation.split_conversations`) — the final assistant turn is the reply, the turns before it the prompt,
  which both must share;
- conversational, explicit prompt: the prompt's turns followed by each reply's, then the same rule;
- standard, explicit prompt: the prompt is one user message, or its turns by the HH rules when it carries
  `Human:`/`Assistant:` markers (`hh.text_prompt_messages`); the replies are the two texts;
- standard, implicit prompt: transcripts with HH markers are split exactly as HH-RLHF's rows
  (`hh.parse_row`); other texts at their common prefix cut back to a word boundary, so neither reply starts
  inside a word (TRL cuts at the first differing character).

A row that yields no pair raises `schema.Drop` (counted by reason; a null value is `null_value`). A column
that is missing or of the wrong type is the user's mapping or dataset to fix: `FormatError`, which the caller
locates. Pure functions, no files or `datasets`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from katcli.data import hh, schema
from katcli.data.conversation import split_conversations
from katcli.data.schema import Drop
from katcli.errors import ConfigError

NULL_VALUE = "null_value"
PARTS = ("prompt", "chosen", "rejected")
EXPECTED = ("TRL's preference format: 'chosen' and 'rejected' (and optionally 'prompt'), each a string or a "
            "list of {'role', 'content'} messages")
_PARTIAL_WORD = re.compile(r"\S+$")


class FormatError(Exception):
    """A column missing or of the wrong type; `reason` names the column and the format expected."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Columns:
    """Which dataset column plays each part; `prompt=None` reads no prompt (implicit)."""

    chosen: str = "chosen"
    rejected: str = "rejected"
    prompt: str | None = "prompt"
    prompt_named: bool = False  # `--columns prompt=X`: X must exist (the default `prompt` may be absent)

    def wanted(self, available: list[str] | None) -> list[str] | None:
        """The columns to read, given the dataset's (None: unknown, read all); FormatError for a missing one."""
        if available is None:
            return None
        for part, col in (("chosen", self.chosen), ("rejected", self.rejected)):
            if col not in available:
                raise FormatError(_missing(part, col, available))
        if self.prompt_named and self.prompt not in available:
            raise FormatError(_missing("prompt", self.prompt, available))
        return [c for c in (self.prompt, self.chosen, self.rejected) if c is not None and c in available]

    def describe(self) -> str:
        """The mapping as `--columns` spells it (for the manifest)."""
        return f"prompt={self.prompt or ''},chosen={self.chosen},rejected={self.rejected}"


def parse_columns(text: str | None) -> Columns:
    """`"prompt=question,chosen=good,rejected=bad"` → Columns; unnamed parts keep TRL's names; `prompt=` reads none."""
    if text is None or not text.strip():
        return Columns()
    given: dict[str, str] = {}
    for item in text.split(","):
        part, sep, col = (x.strip() for x in item.partition("="))
        if not sep or part not in PARTS:
            raise ConfigError(f"--columns entries look like chosen=COLUMN (parts: prompt, chosen, rejected), got {item.strip()!r}")
        if part in given:
            raise ConfigError(f"--columns names {part!r} twice")
        if not col and part != "prompt":
            raise ConfigError(f"--columns: {part!r} needs a column name (only prompt= may be empty: no prompt column)")
        given[part] = col
    if "prompt" in given:
        prompt = given["prompt"] or None
        return Columns(given.get("chosen", "chosen"), given.get("rejected", "rejected"), prompt, prompt is not None)
    return Columns(given.get("chosen", "chosen"), given.get("rejected", "rejected"))


@dataclass(frozen=True)
class Parsed:
    messages: list[dict[str, str]]
    chosen: str
    rejected: str


def _missing(part: str, col: str, available: list[str]) -> str:
    what = f"column {col!r}" + ("" if col == part else f" (--columns {part}={col})")
    return f"{what} is missing; the dataset has {', '.join(map(repr, available)) or 'no columns'}; expected {EXPECTED}"


def _value(row: Mapping[str, Any], part: str, col: str) -> Any:
    if col not in row:
        raise FormatError(_missing(part, col, list(row)))
    value = row[col]
    if value is None:
        raise Drop(NULL_VALUE)
    if not isinstance(value, (str, list)):
        raise FormatError(f"column {col!r} is {schema.json_type(value)}; expected a string or a list of "
                          f"{{'role', 'content'}} messages ({EXPECTED})")
    return value


def _turns(value: list, col: str) -> list[tuple[str, str]]:
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            got = schema.json_type(msg) if not isinstance(msg, dict) else f"an object with keys {sorted(msg)}"
            raise FormatError(f"column {col!r}: message {i} is {got}; expected {{'role', 'content'}} ({EXPECTED})")
        role, content = msg["role"], msg["content"]
        if content is None:
            raise Drop(NULL_VALUE)
        if not isinstance(role, str) or not isinstance(content, str):
            bad, v = ("role", role) if not isinstance(role, str) else ("content", content)
            raise FormatError(f"column {col!r}: message {i}'s {bad!r} is {schema.json_type(v)}; expected a string")
        out.append((role, content))
    return out


def _word_cut(a: str, b: str, n: int) -> int:
    """`n`, or the end of the last whitespace before it, so that neither text continues a word across the cut."""
    def boundary(s: str) -> bool:
        return n == len(s) or s[n].isspace() or s[n - 1].isspace()

    if n and boundary(a) and boundary(b):
        return n
    return len(_PARTIAL_WORD.sub("", a[:n]))


def _starts_with(turns: list[tuple[str, str]], head: list[tuple[str, str]]) -> bool:
    """Whether a reply column already holds the prompt's turns (some datasets store whole conversations there)."""
    if not head or len(turns) <= len(head):
        return False
    return [(r, c.strip()) for r, c in turns[:len(head)]] == [(r, c.strip()) for r, c in head]


def split_texts(chosen: str, rejected: str) -> Parsed:
    """Two whole texts (implicit prompt): HH transcripts by HH's rule, other texts at a word-boundary common prefix."""
    if hh.is_transcript(chosen):
        p = hh.parse_row(chosen, rejected)
        return Parsed(p.messages, p.chosen, p.rejected)
    if chosen.strip() == rejected.strip():
        raise Drop(schema.IDENTICAL_REPLIES)  # a tie, not a prompt with two empty replies
    cut = _word_cut(chosen, rejected, hh.common_prefix_len(chosen, rejected))
    prompt = chosen[:cut].strip()
    if not prompt:
        raise Drop(hh.NO_SHARED_PROMPT)
    c, r = schema.check_replies(chosen[cut:], rejected[cut:])
    return Parsed([{"role": "user", "content": prompt}], c, r)


def parse_row(row: Mapping[str, Any], cols: Columns) -> Parsed:
    """One row → a pair; `Drop` when it yields none, `FormatError` for a missing column or a wrong type."""
    chosen, rejected = _value(row, "chosen", cols.chosen), _value(row, "rejected", cols.rejected)
    explicit = cols.prompt is not None and (cols.prompt_named or cols.prompt in row)
    prompt = _value(row, "prompt", cols.prompt) if explicit else None
    conversational = isinstance(chosen, list)
    for part, col, v in (("rejected", cols.rejected, rejected), ("prompt", cols.prompt, prompt)):
        if v is not None and isinstance(v, list) != conversational:
            kinds = ("a list of messages", "a string") if conversational else ("a string", "a list of messages")
            raise FormatError(f"column {col!r} ({part}) is {kinds[1]} but {cols.chosen!r} (chosen) is {kinds[0]}; "
                              f"expected one kind in every column ({EXPECTED})")
    if conversational:
        head = _turns(prompt, cols.prompt) if prompt is not None else []
        c_turns, r_turns = _turns(chosen, cols.chosen), _turns(rejected, cols.rejected)
        if not (_starts_with(c_turns, head) and _starts_with(r_turns, head)):  # replies that repeat the prompt
            c_turns, r_turns = head + c_turns, head + r_turns
        messages, c, r = split_conversations(c_turns, r_turns)
        return Parsed(messages, c, r)
    if prompt is None:
        return split_texts(chosen, rejected)
    messages = hh.text_prompt_messages(prompt)
    c, r = schema.check_replies(chosen, rejected)
    return Parsed(messages, c, r)

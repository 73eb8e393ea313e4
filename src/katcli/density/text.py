"""The text that represents each prefix when it is embedded, read from `data/prefixes_all.jsonl`.

Two modes:
- `first-user` (default): the first user message, stripped — the same text the prefix id (dedupe key) is
  derived from, so two prefixes that share a prompt are embedded identically;
- `conversation`: every message as a `role: content` line, in order, joined by newlines.

Each line of the prefixes file is `{"id": str, "prefix": {"messages": [{"role", "content"}, ...]}, "n_pairs",
"srcs"}`; a malformed line is a `KatError` naming the file and line. This module knows nothing about models,
embeddings, the workspace or the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from katcli.errors import ConfigError, KatError
from katcli.progress import ProgressFn, no_progress
from katcli.workspace.jsonl import iter_json_lines

FIRST_USER = "first-user"
CONVERSATION = "conversation"
TEXT_MODES = (FIRST_USER, CONVERSATION)

_REBUILD = "re-run `kat prefixes` to rewrite the prefixes file"
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class PrefixTexts:
    """Prefix ids and their texts, in file order (row i of the embeddings ↔ line i of the file)."""

    ids: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def check_text_mode(mode: str) -> None:
    if mode not in TEXT_MODES:
        raise ConfigError(f"--text must be one of {', '.join(TEXT_MODES)} (got {mode!r})")


def messages_of(row: Any, *, file: str | None = None, line: int | None = None) -> list[dict[str, str]]:
    """The validated message list of one prefixes row."""

    def bad(what: str) -> KatError:
        return KatError(what, file=file, line=line, hint=_REBUILD)

    if not isinstance(row, dict):
        raise bad("a prefix row must be a JSON object")
    prefix = row.get("prefix")
    if not isinstance(prefix, dict) or not isinstance(prefix.get("messages"), list):
        raise bad('a prefix row needs "prefix": {"messages": [...]}')
    messages = prefix["messages"]
    if not messages:
        raise bad("the prefix has no messages")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
            raise bad(f'message {i} must be an object with string "role" and "content"')
    return messages


def prefix_text(messages: list[dict[str, str]], mode: str) -> str | None:
    """The text to embed for one prefix, or None in `first-user` mode when there is no user message."""
    if mode == FIRST_USER:
        for msg in messages:
            if msg["role"] == "user":
                return msg["content"].strip()
        return None
    if mode == CONVERSATION:
        return "\n".join(f"{m['role']}: {m['content'].strip()}" for m in messages)
    raise ValueError(f"unknown text mode {mode!r}")


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    return iter_json_lines(path, hint=_REBUILD, name="prefixes file", missing_hint="run `kat prefixes` first")


def read_prefix_texts(path: Path, mode: str = FIRST_USER, *, progress: ProgressFn = no_progress) -> PrefixTexts:
    """Read every prefix's id and text, validating each line; ids must be unique non-empty strings."""
    check_text_mode(mode)
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, row in _rows(path):
        messages = messages_of(row, file=str(path), line=lineno)
        pid = row.get("id")
        if not isinstance(pid, str) or not pid:
            raise KatError('a prefix row needs a non-empty string "id"', file=str(path), line=lineno, hint=_REBUILD)
        if pid in seen:
            raise KatError(
                f"duplicate prefix id {pid!r} (first on line {seen[pid]})", file=str(path), line=lineno, hint=_REBUILD
            )
        seen[pid] = lineno
        text = prefix_text(messages, mode)
        if text is None:
            raise KatError(
                "the prefix has no user message to embed",
                file=str(path),
                line=lineno,
                hint="embed whole conversations with --text conversation, or re-run `kat prefixes`",
            )
        ids.append(pid)
        texts.append(text)
        if len(ids) % _PROGRESS_EVERY == 0:
            progress("read prefixes", len(ids), None)
    if not ids:
        raise KatError("the prefixes file holds no prefixes", file=str(path), hint="run `kat prefixes` on some pairs")
    progress("read prefixes", len(ids), len(ids))
    return PrefixTexts(ids=ids, texts=texts)

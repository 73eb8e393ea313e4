"""Reading JSONL artifacts line by line, with every problem located as `(file:line)`.

One reader for every stage that consumes a kat JSONL file (pairs, prefixes): blank lines are skipped, bytes
that are not UTF-8 and lines that are not JSON raise `KatError` naming the file and line, with the caller's
hint (usually the command that re-creates the file). Memory is one line at a time. What a row must contain
is the caller's business; this module knows only the framing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from katcli.errors import KatError


def where_in_line(exc: json.JSONDecodeError) -> str:
    """`Expecting value at column 26`: json's reason and column within the line, never its "line 1 column N (char M)",
    which contradicts the file's line number beside it."""
    msg = exc.msg[: -len(" at")] if exc.msg.endswith(" at") else exc.msg  # "Unterminated string starting at"
    return f"{msg} at column {exc.colno}"


def iter_json_lines(
    path: Path | str, *, hint: str, name: str = "file", missing_hint: str | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield `(line number, parsed value)` for each non-blank line of `path`.

    A missing file is `KatError("<name> not found")` with `missing_hint` (the command that writes it).
    """
    shown = str(path)
    try:
        fh = open(path, "rb")  # bytes, decoded per line, so a bad byte is reported on its own line
    except FileNotFoundError:
        raise KatError(f"{name} not found", file=shown, hint=missing_hint or hint) from None
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise KatError(f"the file is not valid UTF-8 ({exc.reason})", file=shown, line=lineno,
                               hint=hint) from None
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise KatError(f"invalid JSON: {where_in_line(exc)}", file=shown, line=lineno, hint=hint) from None
            yield lineno, value

"""Identity keys for preference pairs: the prefix id (the dedupe key) and the derived train/test split.

`prefix_id` is the first 16 hex characters of the md5 of the conversation's first user message with every
whitespace run collapsed to one space and the ends stripped. Two pairs whose first user message differs only
in spacing therefore share a prefix id; the stored content keeps its whitespace. Where a source has no test
split (Stack Exchange, imported pairs without one) the split is a pure function of the prefix id, so every
pair of one prompt lands on the same side.

Pure functions only: this module knows nothing about files, sources or the workspace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

_WHITESPACE = re.compile(r"\s+")

#: Percentage of prefix ids that `derived_split` sends to "test" (HH-RLHF's own test share is ≈ 5%).
TEST_PERCENT = 5

PREFIX_ID_LEN = 16


def normalize_for_key(text: str) -> str:
    """Whitespace runs → one space, ends stripped: the form the dedupe key is computed from."""
    return _WHITESPACE.sub(" ", text).strip()


def prefix_id_of_text(first_user_message: str) -> str:
    digest = hashlib.md5(normalize_for_key(first_user_message).encode("utf-8")).hexdigest()
    return digest[:PREFIX_ID_LEN]


def first_user_content(messages: Sequence[Mapping[str, str]]) -> str:
    """The content of the first user message (the prefix always starts with one)."""
    for msg in messages:
        if msg["role"] == "user":
            return msg["content"]
    raise ValueError("prefix has no user message")


def prefix_id(messages: Sequence[Mapping[str, str]]) -> str:
    """The dedupe key of a prefix: md5 of its normalised first user message, 16 hex chars."""
    return prefix_id_of_text(first_user_content(messages))


def is_prefix_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == PREFIX_ID_LEN
        and all(c in "0123456789abcdef" for c in value)
    )


def derived_split(pid: str) -> str:
    """"test" for ~TEST_PERCENT% of prefix ids, else "train"; stable across runs and machines."""
    return "test" if int(pid[:8], 16) % 100 < TEST_PERCENT else "train"

"""Anthropic/hh-rlhf rows → (prefix messages, chosen reply, rejected reply), by the common prefix.

Each row holds two whole transcripts, `chosen` and `rejected`, of the form
`"\\n\\nHuman: …\\n\\nAssistant: …"`, identical up to the final Assistant turn. The prompt is their common
prefix cut back to its last `"\\n\\nAssistant:"`; the replies are what follows that marker in each string.

Why not the obvious alternatives:
- splitting each transcript at its own last `"\\n\\nAssistant:"` breaks when a reply itself contains that
  marker (the model role-plays a dialogue);
- a line-based parser breaks on the many turns that mention `Human:` inline.

Only `"\\n\\nHuman:"` / `"\\n\\nAssistant:"` are role markers. Consecutive same-role turns are merged and empty
turns dropped (`schema.normalize_turns`). One transcript being a prefix of the other is handled naturally:
the shorter one's reply is still cut at the shared marker. Rows without a valid pair raise `schema.Drop`.

This module knows the transcript format only: no files, budgets or `datasets`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from katcli.data import schema
from katcli.data.schema import Drop

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"
SUBSETS: tuple[str, ...] = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")

#: The transcripts share no complete "\n\nAssistant:" marker, so there is no prompt to pair replies on.
NO_SHARED_PROMPT = "no_shared_prompt"
#: `chosen` / `rejected` missing or not strings.
MALFORMED_ROW = "malformed_row"

_MARKER = re.compile(r"\n\n(Human|Assistant):")
_ROLE = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class HHParse:
    messages: list[dict[str, str]]
    chosen: str
    rejected: str


def common_prefix_len(a: str, b: str) -> int:
    """Length of the longest common prefix, comparing slices (C speed) in a bisection over windows."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt transcript, chosen reply, rejected reply), unstripped; `Drop` without a shared marker."""
    shared = common_prefix_len(chosen, rejected)
    cut = chosen.rfind(ASSISTANT, 0, shared)  # the marker must lie wholly inside the shared part
    if cut < 0:
        raise Drop(NO_SHARED_PROMPT)
    start = cut + len(ASSISTANT)
    return chosen[:cut], chosen[start:], rejected[start:]


def transcript_turns(text: str) -> list[tuple[str, str]]:
    """`"\\n\\nHuman: a\\n\\nAssistant: b"` → [("user", "a"), ("assistant", "b")], contents unstripped.

    Text before the first marker (a transcript that does not open with a turn) becomes a pseudo-turn with
    role "preamble", which the prefix check rejects.
    """
    head = text.lstrip()
    if head.startswith(("Human:", "Assistant:")):
        text = "\n\n" + head  # tolerate a transcript that omits the leading blank line
    parts = _MARKER.split(text)
    turns: list[tuple[str, str]] = []
    if parts[0].strip():
        turns.append(("preamble", parts[0]))
    for i in range(1, len(parts), 2):
        turns.append((_ROLE[parts[i]], parts[i + 1]))
    return turns


def is_transcript(text: str) -> bool:
    """Whether `text` holds a role marker: it opens with `Human:`/`Assistant:` or has a `\\n\\nHuman:` one."""
    return text.lstrip().startswith(("Human:", "Assistant:")) or _MARKER.search(text) is not None


def prompt_messages(prompt: str) -> list[dict[str, str]]:
    """A prompt transcript → its prefix messages by the HH rules; `Drop` unless it starts and ends with a user turn.

    Text before the first marker, or a first Assistant turn, is `prompt_not_starting_with_user`; a trailing empty
    `Assistant:` cue is an empty turn and so dropped.
    """
    turns = transcript_turns(prompt)
    if turns and turns[0][0] == "preamble":
        raise Drop(schema.PROMPT_NOT_STARTING_WITH_USER)
    messages = schema.normalize_turns(turns)
    schema.check_prefix(messages)
    return messages


def text_prompt_messages(prompt: str) -> list[dict[str, str]]:
    """A plain-text prompt → prefix messages: its turns by the HH rules when it carries role markers, else one
    user message; `Drop` when it yields no valid prefix."""
    if is_transcript(prompt):
        return prompt_messages(prompt)
    text = prompt.strip()
    if not text:
        raise Drop(schema.EMPTY_PROMPT)
    return [{"role": "user", "content": text}]


def parse_row(chosen: object, rejected: object) -> HHParse:
    """Parse one row's two transcripts; raises `Drop(reason)` for rows that yield no valid pair."""
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise Drop(MALFORMED_ROW)
    prompt, c_reply, r_reply = split_pair(chosen, rejected)
    c_reply, r_reply = schema.check_replies(c_reply, r_reply)
    return HHParse(prompt_messages(prompt), c_reply, r_reply)

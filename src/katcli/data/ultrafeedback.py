"""HuggingFaceH4/ultrafeedback_binarized `*_prefs` rows → (prefix messages, chosen, rejected, meta).

Columns used: `chosen` and `rejected` (lists of `{role, content}` that include the user turn),
`prompt_id`, `score_chosen`, `score_rejected` (`prompt` and `messages` repeat what `chosen` holds).
The prefix is the conversation before the final assistant turn; it must be the same in `chosen` and
`rejected` (`conversation.split_conversations`, the rule TRL's conversational rows share). A tie
(`score_chosen == score_rejected`) is not a preference and is dropped unless `keep_ties`. Rows without a valid pair raise `schema.Drop`.

This module knows the row format only: no files, budgets or `datasets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from katcli.data.conversation import split_conversations
from katcli.data.schema import Drop

#: The parquet file stems per kat split (`data/train_prefs-*.parquet`, `data/test_prefs-*.parquet`).
SPLIT_FILES: dict[str, str] = {"train": "train_prefs", "test": "test_prefs"}

TIE = "tie"
MALFORMED_ROW = "malformed_row"


@dataclass(frozen=True)
class UFParse:
    messages: list[dict[str, str]]
    chosen: str
    rejected: str
    meta: dict[str, Any]


def _turns(conv: object) -> list[tuple[str, str]]:
    if not isinstance(conv, (list, tuple)) or not conv:
        raise Drop(MALFORMED_ROW)
    out = []
    for msg in conv:
        if not isinstance(msg, dict):
            raise Drop(MALFORMED_ROW)
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise Drop(MALFORMED_ROW)
        out.append((role, content))
    return out


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise Drop(MALFORMED_ROW)
    return float(value)


def parse_row(row: dict[str, Any], *, keep_ties: bool = False) -> UFParse:
    """Parse one `*_prefs` row; raises `Drop(reason)` for rows that yield no valid pair."""
    s_chosen, s_rejected = _score(row.get("score_chosen")), _score(row.get("score_rejected"))
    if s_chosen == s_rejected and not keep_ties:
        raise Drop(TIE)
    messages, c_reply, r_reply = split_conversations(_turns(row.get("chosen")), _turns(row.get("rejected")))
    prompt_id = row.get("prompt_id")
    meta = {
        "prompt_id": prompt_id if isinstance(prompt_id, str) else None,
        "score_chosen": s_chosen,
        "score_rejected": s_rejected,
    }
    return UFParse(messages, c_reply, r_reply, meta)

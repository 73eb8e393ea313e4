"""A preference pair given as two whole conversations → (prefix messages, chosen reply, rejected reply).

The rule UltraFeedback's rows and TRL's conversational preference rows share: each conversation ends with
an assistant turn (the reply); everything before it is the prompt, which must be the same in both
(compared with each turn's ends stripped) and hold only user/assistant turns. The prompt is then normalised
like every source's (`schema.normalize_turns`) and must start and end with a user turn.

Turns are `(role, content)` pairs already type-checked by the caller. Pure; raises `schema.Drop`.
"""

from __future__ import annotations

from collections.abc import Sequence

from katcli.data import schema
from katcli.data.schema import Drop

NO_FINAL_ASSISTANT = "no_final_assistant_turn"
PREFIX_MISMATCH = "prefix_mismatch"
UNSUPPORTED_ROLE = "unsupported_role"

Turns = Sequence[tuple[str, str]]


def split_conversations(chosen: Turns, rejected: Turns) -> tuple[list[dict[str, str]], str, str]:
    """(prefix messages, chosen reply, rejected reply) of two conversations that differ in their last turn."""
    if not chosen or not rejected or chosen[-1][0] != "assistant" or rejected[-1][0] != "assistant":
        raise Drop(NO_FINAL_ASSISTANT)
    prefix = chosen[:-1]
    if [(r, c.strip()) for r, c in prefix] != [(r, c.strip()) for r, c in rejected[:-1]]:
        raise Drop(PREFIX_MISMATCH)
    if any(role not in schema.ROLES for role, _ in prefix):
        raise Drop(UNSUPPORTED_ROLE)
    c_reply, r_reply = schema.check_replies(chosen[-1][1], rejected[-1][1])
    messages = schema.normalize_turns(prefix)
    schema.check_prefix(messages)
    return messages, c_reply, r_reply

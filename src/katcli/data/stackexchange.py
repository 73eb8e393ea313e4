"""HuggingFaceH4/stack-exchange-preferences questions → preference pairs between their answers.

Columns used: `qid`, `question` (HTML) and `answers` (a list of `{answer_id, author, author_id,
author_profile, pm_score, selected, text}` with HTML text). A pair needs two answers with *strictly
different* `pm_score` (ties carry no preference). Candidate pairs are ranked by score gap, widest first,
so the default single pair per question is highest vs lowest; answers with equal scores are ordered
accepted-first, then by `answer_id`, which makes the choice deterministic. Question and answers go through
`html_text.html_to_text`; answers are converted lazily, only when a candidate pair needs them.

The prompt is the question alone (one user message). The dataset has no test split, so the caller derives
one from the prefix id. This module knows the row format only: no files, budgets or `datasets`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

from katcli.data import schema
from katcli.data.html_text import html_to_text
from katcli.data.schema import Drop

MALFORMED_ROW = "malformed_row"
EMPTY_QUESTION = "empty_question"
FEWER_THAN_TWO_ANSWERS = "fewer_than_two_answers"
ALL_SCORES_TIED = "all_scores_tied"


class SEPair(NamedTuple):
    pair_key: str  # "<qid>/<chosen answer id>-<rejected answer id>", unique within a site
    messages: list[dict[str, str]]
    chosen: str
    rejected: str
    meta: dict[str, Any]


def _score(value: object) -> float | None:
    if type(value) is int:  # the usual case, checked first (bool is not int here)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _id_key(value: object) -> tuple[int, int | str]:
    # Numeric ids sort numerically, anything else after them as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


def _candidates(order: list[int], scores: list[Any]) -> Iterator[tuple[int, int]]:
    """(better, worse) answer indices with different scores: widest gap first, then by rank in `order`.

    The first one — the top answer against the best-ranked of the lowest-scored — is produced without
    enumerating the rest, since it is usually the only one needed.
    """
    low = scores[order[-1]]
    first_low = next(p for p in range(len(order)) if scores[order[p]] == low)
    yield order[0], order[first_low]
    ranked = sorted(
        (scores[order[b]] - scores[order[a]], a, b)  # negated gap: widest first
        for a in range(len(order))
        for b in range(a + 1, len(order))
        if scores[order[a]] > scores[order[b]]
    )
    for _gap, a, b in ranked[1:]:  # ranked[0] is the pair already produced
        yield order[a], order[b]


def parse_question(row: dict[str, Any], site: str, *, pairs_per_question: int = 1) -> list[SEPair]:
    """Up to `pairs_per_question` pairs from one question row; raises `Drop(reason)` when there are none."""
    question, answers, qid = row.get("question"), row.get("answers"), row.get("qid")
    if not isinstance(question, str) or not isinstance(answers, (list, tuple)):
        raise Drop(MALFORMED_ROW)
    usable = []
    for a in answers:
        if not isinstance(a, dict) or not isinstance(a.get("text"), str):
            continue
        score = _score(a.get("pm_score"))
        if score is None:
            continue
        usable.append(a)
    if len(usable) < 2:
        raise Drop(FEWER_THAN_TWO_ANSWERS)
    scores = [a["pm_score"] for a in usable]
    if len(set(scores)) < 2:
        raise Drop(ALL_SCORES_TIED)
    q_text = html_to_text(question)
    if not q_text:
        raise Drop(EMPTY_QUESTION)
    order = sorted(
        range(len(usable)),
        key=lambda i: (-scores[i], not usable[i].get("selected"), _id_key(usable[i].get("answer_id"))),
    )
    texts: list[str | None] = [None] * len(usable)  # converted only when a candidate pair needs them
    messages = [{"role": "user", "content": q_text}]
    out: list[SEPair] = []
    saw_empty = False
    for hi, lo in _candidates(order, scores):
        c_text, r_text = texts[hi], texts[lo]
        if c_text is None:
            c_text = texts[hi] = html_to_text(usable[hi]["text"])
        if r_text is None:
            r_text = texts[lo] = html_to_text(usable[lo]["text"])
        if not c_text or not r_text:
            saw_empty = True
            continue
        if c_text == r_text:
            continue
        ans_c, ans_r = usable[hi], usable[lo]
        id_c, id_r = ans_c.get("answer_id"), ans_r.get("answer_id")
        meta = {
            "site": site,
            "qid": qid,
            "answer_id_chosen": id_c,
            "answer_id_rejected": id_r,
            "pm_score_chosen": scores[hi],
            "pm_score_rejected": scores[lo],
        }
        out.append(SEPair(f"{qid}/{id_c}-{id_r}", messages, c_text, r_text, meta))
        if len(out) >= pairs_per_question:
            break
    if not out:
        raise Drop(schema.EMPTY_REPLY if saw_empty else schema.IDENTICAL_REPLIES)
    return out

"""HH-RLHF parsing by common prefix: every rule on hand-made rows, and agreement on 1000 real rows."""

from __future__ import annotations

import gzip
import json

import pytest
from datakit import HH_REAL, hh, independent_hh

from katcli.data import hh as H
from katcli.data.keys import prefix_id
from katcli.data.schema import Drop


def parse(row):
    return H.parse_row(row["chosen"], row["rejected"])


def drop_reason(row) -> str:
    with pytest.raises(Drop) as err:
        parse(row)
    return err.value.reason


@pytest.mark.parametrize(
    ("a", "b"),
    [("", ""), ("abc", "abc"), ("abc", "abd"), ("abc", "ab"), ("x" * 1000 + "a", "x" * 1000 + "b"), ("a", "b")],
)
def test_common_prefix_len_matches_the_definition(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert H.common_prefix_len(a, b) == n


def test_single_turn():
    p = parse(hh([("user", "What is 2 + 2?")], "4.", "5."))
    assert p.messages == [{"role": "user", "content": "What is 2 + 2?"}]
    assert (p.chosen, p.rejected) == ("4.", "5.")


def test_multi_turn_keeps_earlier_turns_and_their_whitespace():
    row = hh([("user", "Hi"), ("assistant", "Hello!\n\n```\ncode  here\n```"), ("user", "Thanks")], "Bye.", "Go away.")
    p = parse(row)
    assert [m["role"] for m in p.messages] == ["user", "assistant", "user"]
    assert p.messages[1]["content"] == "Hello!\n\n```\ncode  here\n```"


def test_reply_containing_the_assistant_marker_stays_whole():
    reply = "Example:\n\nHuman: hi\n\nAssistant: hello"
    p = parse(hh([("user", "Show a dialogue")], reply, "No."))
    assert p.chosen == reply
    assert p.messages == [{"role": "user", "content": "Show a dialogue"}]


def test_inline_human_is_not_a_turn():
    q = "Why does my log print 'Human: hi' and then Assistant: hello on one line?"
    p = parse(hh([("user", q)], "Speaker labels.", "Bug."))
    assert p.messages == [{"role": "user", "content": q}]


def test_one_transcript_a_prefix_of_the_other():
    row = hh([("user", "Is it OK?")], "No.", "No. Never, because it is dangerous.")
    assert row["rejected"].startswith(row["chosen"])
    p = parse(row)
    assert (p.chosen, p.rejected) == ("No.", "No. Never, because it is dangerous.")


def test_replies_sharing_a_beginning_are_cut_at_the_shared_marker():
    p = parse(hh([("user", "Capital of Peru?")], "The capital is Lima.", "The capital is Cusco."))
    assert (p.chosen, p.rejected) == ("The capital is Lima.", "The capital is Cusco.")


def test_consecutive_same_role_turns_are_merged_and_empty_turns_dropped():
    row = {"chosen": "\n\nHuman: a\n\nHuman: b\n\nHuman:\n\nAssistant: yes",
           "rejected": "\n\nHuman: a\n\nHuman: b\n\nHuman:\n\nAssistant: no"}
    assert parse(row).messages == [{"role": "user", "content": "a\n\nb"}]


def test_missing_leading_blank_line_is_tolerated():
    p = parse({"chosen": "Human: hi\n\nAssistant: hello", "rejected": "Human: hi\n\nAssistant: go"})
    assert p.messages == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (hh([("user", "q")], "a", ""), "empty_reply"),
        (hh([("user", "q")], "a", "  \n "), "empty_reply"),
        (hh([("user", "q")], "same", "same"), "identical_replies"),
        (hh([("user", "q"), ("assistant", "a1")], "good", "bad"), "prompt_not_ending_with_user"),
        ({"chosen": "\n\nHuman: x\n\nAssistant: 1", "rejected": "\n\nHuman: y\n\nAssistant: 2"}, "no_shared_prompt"),
        ({"chosen": "Preamble\n\nHuman: x\n\nAssistant: 1", "rejected": "Preamble\n\nHuman: x\n\nAssistant: 2"},
         "prompt_not_starting_with_user"),
        ({"chosen": "\n\nAssistant: hi\n\nHuman: x\n\nAssistant: 1",
          "rejected": "\n\nAssistant: hi\n\nHuman: x\n\nAssistant: 2"}, "prompt_not_starting_with_user"),
        ({"chosen": None, "rejected": "x"}, "malformed_row"),
    ],
)
def test_drop_reasons(row, reason):
    assert drop_reason(row) == reason


def test_real_rows_agree_with_an_independent_parse(hh_real):
    rows = [json.loads(line) for line in gzip.open(HH_REAL, "rt", encoding="utf-8")]
    assert len(rows) == 1000
    agree = kept = 0
    for row in rows:
        ref = independent_hh(row["chosen"], row["rejected"])
        try:
            got = parse(row)
        except Drop:
            agree += ref is None
            continue
        kept += 1
        agree += ref is not None and ref == (got.messages, got.chosen, got.rejected, prefix_id(got.messages))
    assert agree / len(rows) >= 0.995
    assert kept >= 950  # nearly every real row is a valid pair

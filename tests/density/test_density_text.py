"""Text per prefix (first user message / whole conversation) and the validation of prefixes_all.jsonl."""

from __future__ import annotations

import json

import pytest
from densitykit import prefix_row

from katcli.density.text import CONVERSATION, FIRST_USER, read_prefix_texts
from katcli.errors import ConfigError, KatError

CONV = [("user", "  Hi there\n"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")]


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_first_user_message_and_conversation_modes(tmp_path):
    path = write(tmp_path / "p.jsonl", [prefix_row("a", CONV), prefix_row("b", [("user", "Only one")])])
    first = read_prefix_texts(path, FIRST_USER)
    assert first.ids == ["a", "b"]
    assert first.texts == ["Hi there", "Only one"]
    conv = read_prefix_texts(path, CONVERSATION)
    assert conv.texts[0] == "user: Hi there\nassistant: Hello! How can I help?\nuser: Tell me a joke."
    assert conv.texts[1] == "user: Only one"


def test_first_user_skips_a_leading_system_message(tmp_path):
    path = write(tmp_path / "p.jsonl", [prefix_row("a", [("system", "Be brief."), ("user", "Why?")])])
    assert read_prefix_texts(path).texts == ["Why?"]


def test_blank_lines_are_skipped_and_progress_is_reported(tmp_path):
    path = write(tmp_path / "p.jsonl", [prefix_row("a", CONV), "", prefix_row("b", CONV)])
    calls = []
    got = read_prefix_texts(path, progress=lambda t, d, n: calls.append((t, d, n)))
    assert got.ids == ["a", "b"] and calls[-1] == ("read prefixes", 2, 2)


@pytest.mark.parametrize(
    ("rows", "message", "line"),
    [
        (["{broken"], "invalid JSON: Expecting property name enclosed in double quotes at column 2", 1),
        ([prefix_row("a", CONV), "[1, 2]"], "a prefix row must be a JSON object", 2),
        ([{"id": "a", "prefix": {}}], 'a prefix row needs "prefix": {"messages": [...]}', 1),
        ([{"id": "a", "prefix": {"messages": []}}], "the prefix has no messages", 1),
        ([{"id": "a", "prefix": {"messages": [{"role": "user", "content": 3}]}}],
         'message 0 must be an object with string "role" and "content"', 1),
        ([{"id": "", "prefix": {"messages": [{"role": "user", "content": "x"}]}}],
         'a prefix row needs a non-empty string "id"', 1),
        ([prefix_row("a", CONV), prefix_row("b", CONV), prefix_row("a", CONV)],
         "duplicate prefix id 'a' (first on line 1)", 3),
        ([prefix_row("a", [("assistant", "hi")])], "the prefix has no user message to embed", 1),
    ],
)
def test_bad_lines_are_named_with_file_and_line(tmp_path, rows, message, line):
    path = write(tmp_path / "p.jsonl", rows)
    with pytest.raises(KatError) as err:
        read_prefix_texts(path)
    assert err.value.message == message
    assert (err.value.file, err.value.line) == (str(path), line)
    assert err.value.hint


def test_no_user_message_is_fine_for_conversation_mode(tmp_path):
    path = write(tmp_path / "p.jsonl", [prefix_row("a", [("assistant", "hi")])])
    assert read_prefix_texts(path, CONVERSATION).texts == ["assistant: hi"]


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(KatError, match="prefixes file not found"):
        read_prefix_texts(tmp_path / "nope.jsonl")
    empty = write(tmp_path / "e.jsonl", [""])
    with pytest.raises(KatError, match="the prefixes file holds no prefixes"):
        read_prefix_texts(empty)
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(json.dumps(prefix_row("a", CONV)).encode() + b"\n\xff\xfe\n")
    with pytest.raises(KatError) as err:
        read_prefix_texts(bad)
    assert err.value.message.startswith("the file is not valid UTF-8") and err.value.line == 2


def test_unknown_text_mode_names_the_flag(tmp_path):
    with pytest.raises(ConfigError) as err:
        read_prefix_texts(tmp_path / "p.jsonl", "last-user")
    assert err.value.message == "--text must be one of first-user, conversation (got 'last-user')"

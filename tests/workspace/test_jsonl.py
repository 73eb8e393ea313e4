"""The shared JSONL reader: blank lines skipped, every framing problem located at its file and line."""

from __future__ import annotations

import pytest

from katcli.errors import KatError
from katcli.workspace.jsonl import iter_json_lines


def test_rows_come_with_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n[2]\n"three"\n')
    assert list(iter_json_lines(path, hint="h")) == [(1, {"a": 1}), (4, [2]), (5, "three")]


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"a": 1}\n{broken\n', "invalid JSON: Expecting property name enclosed in double quotes at column 2", 2),
        (b'{"a": 1}\n{"b": "caf\xe9"}\n', "the file is not valid UTF-8 (invalid continuation byte)", 2),
    ],
)
def test_bad_lines_are_located_with_the_callers_hint(tmp_path, content, message, line):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(KatError) as err:
        list(iter_json_lines(path, hint="re-run `kat prefixes`"))
    assert (err.value.message, err.value.file, err.value.line) == (message, str(path), line)
    assert err.value.hint == "re-run `kat prefixes`"


def test_a_missing_file_names_what_it_is_and_the_command_that_writes_it(tmp_path):
    with pytest.raises(KatError) as err:
        list(iter_json_lines(tmp_path / "nope.jsonl", hint="h", name="prefixes file",
                             missing_hint="run `kat prefixes` first"))
    assert err.value.message == "prefixes file not found"
    assert err.value.hint == "run `kat prefixes` first"

"""`kat pairs import` validation: every line checked, clear reasons, bounded reads of huge lines."""

from __future__ import annotations

import io
import json

import pytest

from katcli.data import importer as I
from katcli.data.keys import prefix_id
from katcli.errors import KatError

GOOD = {
    "prefix": {"messages": [{"role": "user", "content": "Hi there"}]},
    "chosen": "Hello! How can I help?",
    "rejected": "What.",
    "src": "mine",
}


def line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def with_(**changes):
    obj = json.loads(json.dumps(GOOD))
    for k, v in changes.items():
        if v is ...:
            obj.pop(k)
        else:
            obj[k] = v
    return obj


def test_full_schema_line_gets_derived_fields():
    pair = I.parse_line(line(GOOD))
    assert pair["prefix_id"] == prefix_id(GOOD["prefix"]["messages"])
    assert pair["split"] in ("train", "test")
    assert pair["id"] is None  # derived by import_pairs (it needs to see duplicates)
    assert list(pair) == ["id", "prefix", "chosen", "rejected", "src", "split", "prefix_id", "meta"]


def test_given_fields_are_kept():
    pid = prefix_id(GOOD["prefix"]["messages"])
    pair = I.parse_line(line(with_(id="p-1", split="test", prefix_id=pid, meta={"k": 1})))
    assert (pair["id"], pair["split"], pair["prefix_id"], pair["meta"]) == ("p-1", "test", pid, {"k": 1})


def test_legacy_plain_prompt_and_transcript_prompt():
    plain = I.parse_line(line({"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}))
    assert plain["prefix"]["messages"] == [{"role": "user", "content": "Say hi"}]
    assert plain["src"] == "import"
    transcript = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke\n\nAssistant:"
    pair = I.parse_line(line({"prompt": transcript, "chosen": " A joke.", "rejected": " No."}))
    assert pair["prefix"]["messages"] == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert (pair["chosen"], pair["rejected"]) == ("A joke.", "No.")


def test_legacy_transcript_prompt_follows_the_hh_rules():
    """The HH parser's repairs, as for downloaded HH rows: empty turns dropped, same-role turns merged."""
    prompt = "\n\nHuman: Hi\n\nHuman: there\n\nAssistant: \n\nAssistant: Hello!\n\nHuman: Joke?\n\nAssistant:"
    pair = I.parse_line(line({"prompt": prompt, "chosen": "A joke.", "rejected": "No."}))
    assert pair["prefix"]["messages"] == [
        {"role": "user", "content": "Hi\n\nthere"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Joke?"},
    ]
    inline = I.parse_line(line({"prompt": "What do Human: and Assistant: mean?", "chosen": "a", "rejected": "b"}))
    assert inline["prefix"]["messages"] == [{"role": "user", "content": "What do Human: and Assistant: mean?"}]


BAD_LINES = [
    (b'{"prefix": {"messages": [}\n', "broken JSON: Expecting value at column 26"),
    (b"[1, 2]\n", "a line must be a JSON object, got an array"),
    (line(with_(chosen=5)), "'chosen' must be a string, got a number"),
    (line(with_(rejected=...)), "missing 'rejected'"),
    (line(with_(prefix=...)), "missing 'prefix' (or the legacy 'prompt', or HH-RLHF's 'chosen'/'rejected' alone)"),
    # Anthropic/hh-rlhf's own rows: two whole transcripts, split at their common prefix
    (line({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: other\n\nAssistant: b"}),
     "'chosen' and 'rejected' transcripts share no '\\n\\nAssistant:' turn to reply to"),
    (line({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: "}),
     "a reply after the shared transcript is empty"),
    (line({"chosen": "\n\nAssistant: hi\n\nHuman: q\n\nAssistant: a",
           "rejected": "\n\nAssistant: hi\n\nHuman: q\n\nAssistant: b"}),
     "the shared transcript must start with a Human turn"),
    (line({"chosen": ["a"], "rejected": "b"}), "'chosen' must be a string, got an array"),
    (line(with_(prefix={"messages": "hi"})), "'prefix.messages' must be an array, got a string"),
    (line(with_(prefix={"messages": []})), "'prefix.messages' is empty"),
    (line(with_(prefix={"messages": [{"role": "assistant", "content": "x"}]})),
     "'prefix.messages[0].role' is 'assistant' but 'user' was expected: a prefix alternates user/assistant starting with user"),
    (line(with_(prefix={"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})),
     "'prefix.messages[1].role' is 'user' but 'assistant' was expected: a prefix alternates user/assistant starting with user"),
    (line(with_(prefix={"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})),
     "the prefix must end with a user message (the replies answer it)"),
    (line(with_(prefix={"messages": [{"role": "system", "content": "a"}]})),
     "'prefix.messages[0].role' must be 'user' or 'assistant', got \"system\""),
    (line(with_(prefix={"messages": [{"role": "user", "content": "  "}]})), "'prefix.messages[0].content' is empty"),
    (line(with_(prefix={"messages": [{"role": "user", "content": "a", "name": "x"}]})),
     "'prefix.messages[0]' has unexpected key 'name' (allowed: role, content)"),
    (line(with_(chosen="")), "'chosen' is empty"),
    (line(with_(rejected=GOOD["chosen"])), "'chosen' and 'rejected' are identical: no preference to learn"),
    (line(with_(split="dev")), "'split' must be 'train' or 'test', got \"dev\""),
    (line(with_(src="my source")), "'src' must be a short name of letters, digits, '.', '_' or '-', got 'my source'"),
    (line(with_(id=3)), "'id' must be a non-empty string, got 3"),
    (line(with_(prefix_id="abc")), "'prefix_id' must be 16 lowercase hex characters, got \"abc\""),
    (line(with_(prefix_id="0" * 16)),
     f"'prefix_id' '{'0' * 16}' does not match the first user message (expected "
     f"'{prefix_id(GOOD['prefix']['messages'])}'; drop the field to have it derived)"),
    (line(with_(extra=1)), "unexpected key 'extra' (allowed: chosen, id, meta, prefix, prefix_id, rejected, split, src)"),
    (line(with_(meta=[1])), "'meta' must be an object, got an array"),
    (b'{"prompt": "hi", "chosen": "a\\ud800", "rejected": "b"}\n',
     "'chosen' holds an unpaired surrogate escape (\\ud800-\\udfff)"),
    (b'{"chosen": "caf\xe9"}\n', "not valid UTF-8 (byte 16 of the line)"),
    # legacy prompts with transcript markers: turns by the HH rules, which must start and end with Human
    (line({"prompt": "\n\nAssistant: hi", "chosen": "a", "rejected": "b"}),
     "'prompt' transcript must start with a Human turn"),
    (line({"prompt": "Assistant: hi\n\nHuman: q", "chosen": "a", "rejected": "b"}),
     "'prompt' transcript must start with a Human turn"),
    (line({"prompt": "Some intro\n\nHuman: q", "chosen": "a", "rejected": "b"}),
     "'prompt' transcript must start with a Human turn"),
    (line({"prompt": "\n\nHuman: q\n\nAssistant: an answer", "chosen": "a", "rejected": "b"}),
     "'prompt' transcript must end with a Human turn (the replies answer it)"),
    (line({"prompt": "\n\nHuman: \n\nAssistant:", "chosen": "a", "rejected": "b"}),
     "'prompt' transcript has no non-empty turn"),
]


def test_hh_rlhf_rows_split_at_the_common_prefix_like_the_download():
    from katcli.data import hh

    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: Knock knock.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: No."}
    pair = I.parse_line(line(row))
    want = hh.parse_row(row["chosen"], row["rejected"])
    assert pair["prefix"]["messages"] == want.messages == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A joke?"}]
    assert (pair["chosen"], pair["rejected"], pair["src"]) == ("Knock knock.", "No.", "import")
    assert pair["prefix_id"] == prefix_id(want.messages) and pair["id"] is None


def test_gzip_files_are_read_through_gzip_and_a_truncated_one_is_an_error_at_its_line(tmp_path):
    import gzip

    plain = tmp_path / "in.jsonl"
    plain.write_bytes(line(GOOD) + line(with_(chosen="Another")))
    gz = tmp_path / "in.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    outs = []
    for src in (plain, gz):
        out = io.BytesIO()
        assert I.import_pairs([src], out).pairs_written == 2
        outs.append(out.getvalue())
    assert outs[0] == outs[1]

    many = b"".join(line(with_(chosen=f"answer {i}")) for i in range(2000))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(many, mtime=0)[:-200])
    with pytest.raises(KatError) as err:
        I.import_pairs([cut], io.BytesIO(), skip_invalid=True)  # never skipped: the rest of the file is lost
    assert err.value.located().startswith(f"the gzip stream is truncated or corrupt (")
    assert err.value.line is not None and 1 < err.value.line <= 2000
    assert err.value.hint == f"`gzip -t {cut}` checks the file; re-download or re-compress it"


@pytest.mark.parametrize(("raw", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_reasons(raw, reason):
    with pytest.raises(I.LineError) as err:
        I.parse_line(raw)
    assert err.value.reason == reason


def run_import(tmp_path, content: bytes, skip=False):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    out = io.BytesIO()
    report = I.import_pairs([src], out, skip_invalid=skip)
    return report, [json.loads(x) for x in out.getvalue().splitlines()]


def test_first_bad_line_stops_with_file_and_line(tmp_path):
    with pytest.raises(KatError) as err:
        run_import(tmp_path, line(GOOD) + b"\n" + b"{oops\n" + line(GOOD))
    assert err.value.located() == (
        f"broken JSON: Expecting property name enclosed in double quotes at column 2 ({tmp_path / 'in.jsonl'}:3)"
    )
    assert err.value.hint == "fix the line, or pass --skip-invalid to skip bad lines"


def test_skip_invalid_counts_and_keeps_the_first_few(tmp_path):
    bad = b"".join(raw for raw, _ in BAD_LINES)
    report, pairs = run_import(tmp_path, line(GOOD) + bad + line(with_(chosen="Another good answer")), skip=True)
    assert report.invalid == len(BAD_LINES)
    assert len(report.first_invalid) == I.REPORT_FIRST
    assert report.first_invalid[0] == (str(tmp_path / "in.jsonl"), 2, BAD_LINES[0][1])
    assert len(pairs) == report.pairs_written == 2


def test_a_50_mb_line_is_refused_without_being_read_whole(tmp_path):
    huge = b'{"prompt": "' + b"x" * (50 * 1024 * 1024) + b'", "chosen": "a", "rejected": "b"}\n'
    with pytest.raises(KatError) as err:
        run_import(tmp_path, line(GOOD) + huge + line(GOOD))
    assert err.value.located() == f"line is longer than 16 MiB ({tmp_path / 'in.jsonl'}:2)"
    report, pairs = run_import(tmp_path, line(GOOD) + huge + line(with_(chosen="other")), skip=True)
    assert report.invalid == 1 and report.first_invalid[0][1] == 2
    assert [p["chosen"] for p in pairs] == ["Hello! How can I help?", "other"]


def test_duplicate_ids_are_refused_and_identical_pairs_get_distinct_derived_ids(tmp_path):
    with pytest.raises(KatError, match=r"duplicate id 'a' \(first at .*in.jsonl:1\)"):
        run_import(tmp_path, line(with_(id="a")) + line(with_(id="a", chosen="other")))
    report, pairs = run_import(tmp_path, line(GOOD) + line(GOOD))
    assert pairs[0]["id"].startswith("import/") and pairs[1]["id"] == pairs[0]["id"] + "-2"


def test_nothing_valid_is_an_error(tmp_path):
    with pytest.raises(KatError, match=r"no valid pairs in .* \(2 invalid lines\)"):
        run_import(tmp_path, b"{}\n[]\n", skip=True)


def test_byte_order_mark_and_crlf_are_tolerated(tmp_path):
    report, pairs = run_import(tmp_path, b"\xef\xbb\xbf" + line(GOOD).replace(b"\n", b"\r\n") + b"\r\n" + line(GOOD))
    assert report.pairs_written == 2 and report.invalid == 0


@pytest.mark.parametrize("kind", ["bz2", "xz"])
def test_bzip2_and_xz_files_are_read_like_gzip(tmp_path, kind):
    import bz2
    import lzma

    data = line(GOOD) + line(with_(chosen="Another"))
    src = tmp_path / f"in.jsonl.{kind}"
    src.write_bytes(bz2.compress(data) if kind == "bz2" else lzma.compress(data))
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(data)
    outs = []
    for f in (plain, src):
        out = io.BytesIO()
        I.import_pairs([f], out)
        outs.append(out.getvalue())
    assert outs[0] == outs[1]
    src.write_bytes(src.read_bytes()[:-8])
    with pytest.raises(KatError) as err:
        I.import_pairs([src], io.BytesIO())
    tool = "bzip2" if kind == "bz2" else "xz"
    assert err.value.message.startswith(f"the {tool} stream is truncated or corrupt (")
    assert err.value.hint == f"`{tool} -t {src}` checks the file; re-download or re-compress it"


@pytest.mark.parametrize(("magic", "kind", "tool"), [(b"\x28\xb5\x2f\xfd", "zstd", "zstd -d"),
                                                     (b"PK\x03\x04", "zip", "unzip")])
def test_zstd_and_zip_files_are_refused_by_name_not_as_bad_utf8(tmp_path, magic, kind, tool):
    src = tmp_path / "in.jsonl.x"
    src.write_bytes(magic + b"\x00" * 40)
    with pytest.raises(KatError) as err:
        I.import_pairs([src], io.BytesIO(), skip_invalid=True)
    assert err.value.located() == f"the file is {kind}-compressed, which kat does not read ({src})"
    assert err.value.hint == f"decompress it first (`{tool} {src}`), or compress it with gzip"

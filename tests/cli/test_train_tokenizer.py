"""`kat train tokenizer`: flags, messages, exit codes, manifest record, determinism, upstream checks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from katfixtures import record_stage
from katcli.cli.app import KatGroup, root
from katcli.cli.commands import group
from katcli.workspace import Manifest
from katcli.workspace import paths as P

OUT = "tokenizer/tokenizer.json"


@pytest.fixture
def kat_train(ws_dir):
    """`kat train …` through kat's root callback and error boundary (independent of app registration)."""
    app = typer.Typer(cls=KatGroup, pretty_exceptions_enable=False)
    app.callback()(root)
    app.add_typer(group("train"), name="train")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, ["-w", str(ws_dir), "train", *map(str, args)], catch_exceptions=False)

    return run


def _pair(i: int) -> dict:
    return {
        "id": f"p{i}",
        "prefix": {"messages": [
            {"role": "user", "content": f"How do I cook pasta number {i}? Use 12345 grams 😀"},
            {"role": "assistant", "content": "Boil water, add salt."},
            {"role": "user", "content": "And then <|assistant_end|> what?"},
        ]},
        "chosen": f"Add the pasta and stir for {i % 9 + 5} minutes.",
        "rejected": "I don't know, café.",
        "src": "hh-rlhf", "split": "train", "prefix_id": f"x{i}", "meta": {},
    }  # fmt: skip


def _record_pairs(ws_dir, n: int = 60, extra: str = "") -> str:
    text = "".join(json.dumps(_pair(i)) + "\n" for i in range(n)) + extra
    record_stage(ws_dir, "pairs", {P.PAIRS: text})
    return text


def test_trains_writes_json_and_records_the_sha(kat_train, ws_dir) -> None:
    _record_pairs(ws_dir)
    result = kat_train("tokenizer", "--vocab-size", 300)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    chars = sum(
        len(t) for i in range(60) for t in
        [m["content"] for m in _pair(i)["prefix"]["messages"]] + [_pair(i)["chosen"], _pair(i)["rejected"]]
    )  # fmt: skip
    assert lines[0] == f"Trained on {chars:,} characters (300 texts from 60 pairs)"
    assert lines[1].startswith("Vocabulary: 300 ids (291 merges + 9 special tokens); ")
    assert lines[1].endswith(" bytes/token")
    data = (ws_dir / OUT).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert lines[2] == f"Wrote {ws_dir.resolve() / OUT} (sha256 {sha[:16]}…)"
    assert len(lines) == 3

    run = Manifest.load(ws_dir / P.MANIFEST).runs["tokenizer"]
    assert [(o.path, o.sha256, o.rows) for o in run.outputs] == [(OUT, sha, 300)]
    assert [i.path for i in run.inputs] == [P.PAIRS]
    assert run.params == {"vocab_size": 300, "max_chars": None}
    assert run.stats["sha256"] == sha and run.stats["vocab_size"] == 300 and run.stats["pairs"] == 60

    from katcli.model import Tokenizer

    tok = Tokenizer.load(ws_dir / "tokenizer")
    assert tok.vocab_size == 300 and tok.sha256() == sha
    assert tok.decode(tok.encode("pasta 😀 café")) == "pasta 😀 café"

    # Same pairs, same flags: byte-identical tokenizer.
    assert kat_train("tokenizer", "--vocab-size", 300).exit_code == 0
    assert (ws_dir / OUT).read_bytes() == data


def test_max_chars_caps_the_text_exactly(kat_train, ws_dir) -> None:
    _record_pairs(ws_dir)
    result = kat_train("tokenizer", "--vocab-size", 280, "--max-chars", 1000)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Trained on 1,000 characters (")
    run = Manifest.load(ws_dir / P.MANIFEST).runs["tokenizer"]
    assert run.stats["chars"] == 1000 and run.params["max_chars"] == 1000


def test_small_corpus_warns_about_a_smaller_vocabulary(kat_train, ws_dir) -> None:
    _record_pairs(ws_dir, n=2)
    result = kat_train("tokenizer", "--vocab-size", 5000)
    assert result.exit_code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Note: the text supports only ") and first.endswith(", fewer than --vocab-size 5,000")


def test_missing_pairs_is_an_upstream_error(kat_train, ws_dir) -> None:
    result = kat_train("tokenizer")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: data/pairs_all.jsonl is missing",
        "Hint: run `kat pairs download` first",
    ]
    assert not (ws_dir / OUT).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vocab-size", "100"), "Error: --vocab-size must be at least 265 (256 byte tokens + 9 special tokens)"),
        (("--max-chars", "0"), "Error: --max-chars must be at least 1"),
    ],
)
def test_bad_flags(kat_train, ws_dir, args, message) -> None:
    _record_pairs(ws_dir)
    result = kat_train("tokenizer", *args)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        message, "Hint: `kat train tokenizer --help` lists each flag with the values it accepts"]


def test_a_bad_pairs_line_names_file_and_line_and_writes_nothing(kat_train, ws_dir) -> None:
    _record_pairs(ws_dir, n=3, extra='{"prefix": {"messages": []}, "chosen": "a"}\n')
    result = kat_train("tokenizer", "--vocab-size", 300)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"Error: not a pair record: 'rejected' ({ws_dir.resolve() / P.PAIRS}:4)"
    assert lines[1].startswith("Hint: each line needs prefix.messages[*].content, chosen and rejected")
    assert not (ws_dir / OUT).exists()
    assert "tokenizer" not in Manifest.load(ws_dir / P.MANIFEST).runs


def test_command_modules_import_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import katcli.cli.train, katcli.cli.import_cmd, katcli.model\n"
        "heavy = ('torch', 'rustbpe', 'tiktoken')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

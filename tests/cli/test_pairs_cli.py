"""`kat pairs download|import` through the CLI: summaries, exact error messages, exit codes, nothing
written on failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from datakit import read_jsonl  # noqa: E402

from katcli.data.stats import format_pairs_stats  # noqa: E402
from katcli.workspace import Manifest  # noqa: E402
from katcli.workspace import paths as P  # noqa: E402

GOOD = {"prefix": {"messages": [{"role": "user", "content": "Hi"}]}, "chosen": "Hello!", "rejected": "Go away.",
        "src": "mine"}


def good_line(**kw) -> bytes:
    return (json.dumps({**GOOD, **kw}) + "\n").encode()


def test_download_from_sample_prints_the_summary_and_records_the_same_numbers(kat, ws_dir):
    result = kat("pairs", "download", "--from", "sample")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Pairs: budget 200,000, mix hh=1,uf=1,se=1, seed 0" in out
    assert "hh-rlhf dropped: empty_reply 2, identical_replies 2, no_shared_prompt 1" in out
    assert "ultrafeedback-binarized dropped: empty_reply 1, identical_replies 1, no_final_assistant_turn 1, " \
           "prefix_mismatch 1, tie 8" in out
    assert "Note: budget 200000 not reached: the chosen sources gave 413 pairs" in out
    assert f"Wrote {ws_dir / P.PAIRS} (413 pairs) and {ws_dir / P.STATS}" in out
    run = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"]
    assert run.params["from"] == "sample" and run.params["budget"] == 200_000
    assert run.stats["pairs_total"] == 413 == len(read_jsonl(ws_dir / P.PAIRS))
    assert run.output(P.PAIRS).rows == 413
    assert (ws_dir / P.STATS).read_text(encoding="utf-8") == format_pairs_stats(run.stats)
    hh = run.stats["sources"]["hh-rlhf"]
    assert (hh["rows_read"], hh["pairs_kept"], hh["dropped_total"]) == (241, 234, 7)
    assert hh["origin"] == "mirror sample"  # not the install path: stats.txt is the same on every machine
    assert hh["mean_prompt_chars"] > 0 and hh["mean_chosen_chars"] > hh["mean_rejected_chars"]


def test_download_is_byte_identical_on_rerun(kat, ws_dir):
    assert kat("pairs", "download", "--from", "sample", "--budget", "150", "--seed", "7").exit_code == 0
    first = (ws_dir / P.PAIRS).read_bytes()
    assert kat("-q", "pairs", "download", "--from", "sample", "--budget", "150", "--seed", "7").exit_code == 0
    assert (ws_dir / P.PAIRS).read_bytes() == first and first.count(b"\n") == 150


def test_hub_unreachable_names_from_and_the_offline_cache_and_writes_nothing(kat, ws_dir):
    result = kat("pairs", "download", "--source", "hh")  # conftest: HF_HUB_OFFLINE=1, empty HF_HOME
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: cannot get Anthropic/hh-rlhf from the Hugging Face hub: ")
    assert lines[1] == (
        "Hint: no network? use `--from DIR` with a local copy in the hub's layout (or `--from sample`); or fetch "
        "once while online so the HF offline cache (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1) serves later runs"
    )
    assert "Traceback" not in result.output
    assert not ws_dir.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "lots"], "Error: --budget must be a number of pairs like 200000, 200k or 1.5M, got 'lots'"),
        (["--mix", "hh=1"], "Error: --mix gives no weight to the chosen source 'uf' (add uf=1)"),
        (["--se-pairs-per-question", "0"], "Error: --se-pairs-per-question must be at least 1"),
        (["--from", "/nonexistent/mirror"], "Error: --from: /nonexistent/mirror is not a directory"),
    ],
)
def test_bad_flags(kat, ws_dir, args, message):
    result = kat("pairs", "download", *args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == message
    assert not (ws_dir / P.PAIRS).exists()


def _dataset(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def test_download_a_dataset_beside_a_builtin_source(kat, ws_dir, tmp_path):
    root = _dataset(tmp_path / "my-prefs", [{"prompt": f"Q{i}?", "chosen": "good", "rejected": "bad"} for i in range(8)]
                    + [{"prompt": "Tie?", "chosen": "same", "rejected": "same"}])
    result = kat("pairs", "download", "--from", "sample", "--source", "hh", "--dataset", f"mine={root}",
                 "--budget", "20", "--mix", "hh=1,mine=1")
    assert result.exit_code == 0, result.output
    assert "Pairs: budget 20, mix hh=1,mine=1, seed 0" in result.stdout
    assert "mine dropped: identical_replies 1" in result.stdout
    pairs = read_jsonl(ws_dir / P.PAIRS)
    assert [p["src"] for p in pairs] == ["hh-rlhf"] * 12 + ["mine"] * 8
    run = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"]
    assert run.params["datasets"] == [{"label": "mine", "name": str(root), "config": None, "splits": ["train"],
                                       "columns": "prompt=prompt,chosen=chosen,rejected=rejected"}]
    assert str(root.resolve()) in [i.path for i in run.inputs]


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        ([{"question": "Q?", "chosen": "a", "rejected": "b"}], ["--columns", "prompt=query"],
         "Error: row 1 of d/train: column 'query' (--columns prompt=query) is missing; the dataset has 'question', "
         "'chosen', 'rejected'; expected TRL's preference format: 'chosen' and 'rejected' (and optionally 'prompt'), "
         "each a string or a list of {'role', 'content'} messages ({root}/train.jsonl:1)"),
        ([{"chosen": "a b", "rejected": "a c"}], ["--split", "test"], "Error: --split test: {root} has no split 'test' "
         "(it has train)"),
        ([{"chosen": "a b", "rejected": "a c"}], ["--mix", "d=1,x=2"],
         "Error: --mix names an unknown source 'x' (known: hh, uf, se, d)"),
    ],
)
def test_dataset_errors_are_exact_and_write_nothing(kat, ws_dir, tmp_path, rows, args, message):
    root = _dataset(tmp_path / "d", rows)
    result = kat("pairs", "download", "--dataset", str(root), *args)
    assert result.exit_code == 1, result.output
    assert result.stderr[result.stderr.index("Error: "):].splitlines()[0] == message.replace("{root}", str(root))
    assert not ws_dir.exists()


def test_dataset_flags_without_a_dataset_are_refused(kat):
    result = kat("pairs", "download", "--from", "sample", "--split", "test")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: --config, --split and --columns describe a --dataset; add one"


def test_unknown_source_is_a_usage_error(kat):
    result = kat("pairs", "download", "--source", "xx")
    assert result.exit_code == 2
    assert "'xx' is not one of 'hh', 'uf', 'se'" in result.stderr


# -- import -------------------------------------------------------------------------------------------
BAD = {
    "broken JSON": (b'{"prefix": {"messages": [\n', "broken JSON: Expecting value at column 26"),
    "wrong type": (good_line(chosen=["a"]), "'chosen' must be a string, got an array"),
    "wrong role order": (
        good_line(prefix={"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
        "'prefix.messages[1].role' is 'user' but 'assistant' was expected: a prefix alternates user/assistant "
        "starting with user"),
    "empty content": (good_line(prefix={"messages": [{"role": "user", "content": ""}]}),
                      "'prefix.messages[0].content' is empty"),
    "non-UTF-8": (b'{"prompt": "\xff\xfe", "chosen": "a", "rejected": "b"}\n', "not valid UTF-8 (byte 13 of the line)"),
    "50 MB line": (b'{"prompt": "' + b"y" * (50 * 1024 * 1024) + b'", "chosen": "a", "rejected": "b"}\n',
                   "line is longer than 16 MiB"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_import_bad_line_stops_with_location_and_leaves_everything_as_it_was(kat, ws_dir, tmp_path, case):
    ok = tmp_path / "ok.jsonl"
    ok.write_bytes(good_line())
    assert kat("-q", "pairs", "import", str(ok)).exit_code == 0
    before = ((ws_dir / P.PAIRS).read_bytes(), (ws_dir / P.MANIFEST).read_bytes(), (ws_dir / P.STATS).read_bytes())

    raw, reason = BAD[case]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(good_line(chosen="Fine") + raw + good_line(chosen="Also fine"))
    result = kat("pairs", "import", str(bad))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {reason} ({bad}:2)", "Hint: fix the line, or pass --skip-invalid to skip bad lines"]
    assert "Traceback" not in result.output
    after = ((ws_dir / P.PAIRS).read_bytes(), (ws_dir / P.MANIFEST).read_bytes(), (ws_dir / P.STATS).read_bytes())
    assert after == before
    assert not [p for p in (ws_dir / "data").iterdir() if ".tmp-" in p.name]


def test_import_reads_the_real_hh_rlhf_file_as_shipped_gzip_and_all(kat, ws_dir, hh_real, tmp_path):
    result = kat("pairs", "import", str(hh_real))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: a reply after the shared transcript is empty ({hh_real}:87)",
        "Hint: fix the line, or pass --skip-invalid to skip bad lines"]
    assert not (ws_dir / P.PAIRS).exists()
    result = kat("pairs", "import", str(hh_real), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "Imported 997 pairs from 1,000 lines (import 997;" in result.stdout
    # the same pairs `kat pairs download --from` makes of this file (only ids and splits are the importer's own)
    from katcli.data import hh
    import gzip
    rows = [json.loads(x) for x in gzip.decompress(hh_real.read_bytes()).splitlines()]
    pairs = read_jsonl(ws_dir / P.PAIRS)
    first = hh.parse_row(rows[0]["chosen"], rows[0]["rejected"])
    assert (pairs[0]["prefix"]["messages"], pairs[0]["chosen"], pairs[0]["rejected"]) == (
        first.messages, first.chosen, first.rejected)


def test_import_of_a_truncated_gzip_file_stops_and_writes_nothing(kat, ws_dir, hh_real, tmp_path):
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(hh_real.read_bytes()[: hh_real.stat().st_size // 2])
    result = kat("pairs", "import", str(cut), "--skip-invalid")
    assert result.exit_code == 1
    err = [x for x in result.stderr.splitlines() if x.startswith(("Error:", "Hint:"))]
    assert err[0].startswith("Error: the gzip stream is truncated or corrupt (") and f"({cut}:" in err[0]
    assert err[1] == f"Hint: `gzip -t {cut}` checks the file; re-download or re-compress it"
    assert "Traceback" not in result.output
    assert not (ws_dir / P.PAIRS).exists()


def test_import_legacy_prompt_opening_with_assistant_is_refused_or_skipped(kat, ws_dir, tmp_path):
    f = tmp_path / "legacy.jsonl"
    f.write_bytes(b'{"prompt": "\\n\\nHuman: q", "chosen": "c", "rejected": "r"}\n'
                  b'{"prompt": "\\n\\nAssistant: hi", "chosen": "c", "rejected": "r"}\n'
                  b'{"prompt": "Assistant: hi\\n\\nHuman: q", "chosen": "c2", "rejected": "r"}\n')
    result = kat("pairs", "import", str(f))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: 'prompt' transcript must start with a Human turn ({f}:2)",
        "Hint: fix the line, or pass --skip-invalid to skip bad lines"]
    result = kat("pairs", "import", str(f), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert f"  {f}:3: 'prompt' transcript must start with a Human turn" in result.stderr.splitlines()
    pairs = read_jsonl(ws_dir / P.PAIRS)
    assert [p["prefix"]["messages"] for p in pairs] == [[{"role": "user", "content": "q"}]]


def test_import_skip_invalid_counts_and_reports_the_first_few(kat, ws_dir, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_bytes(good_line(chosen="one") + b"".join(raw for raw, _ in BAD.values()) + good_line(chosen="two")
                  + b'{"prompt": "legacy", "chosen": "c", "rejected": "r"}\n')
    result = kat("pairs", "import", str(f), "--skip-invalid")
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    err = err[err.index("Skipped 6 invalid line(s); first ones:"):]  # after the progress bar
    assert err[1] == f"  {f}:2: broken JSON: Expecting value at column 26"
    assert len([e for e in err if e.startswith(f"  {f}:")]) == 5
    assert "Imported 3 pairs from 9 lines (import 1, mine 2;" in result.stdout
    pairs = read_jsonl(ws_dir / P.PAIRS)
    assert [p["chosen"] for p in pairs] == ["one", "two", "c"]
    stats = Manifest.load(ws_dir / P.MANIFEST).runs["pairs"].stats
    assert stats["kind"] == "import" and stats["invalid"] == 6 and stats["pairs_written"] == 3
    assert "invalid: " in (ws_dir / P.STATS).read_text(encoding="utf-8")


def test_help_shows_examples(kat):
    for args in (["pairs", "download", "--help"], ["pairs", "import", "--help"]):
        result = kat(*args, workspace=None)
        assert result.exit_code == 0
        assert "Example: kat -w ./exp pairs" in result.stdout
    out = " ".join(kat("pairs", "import", "--help", workspace=None).stdout.replace("│", " ").split())
    assert ("JSONL files (plain, .gz, .bz2 or .xz) in kat's pair schema, the legacy {prompt, chosen, rejected} "
            "form, or HH-RLHF's {chosen, rejected} transcripts.") in out

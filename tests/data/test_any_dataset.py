"""`--dataset`: local datasets in the hub's layout, built here, in each of TRL's preference forms (and mapped by
`--columns`), read into kat's pairs by the built-in sources' rules; the real HH rows in TRL's form give the same
pairs as the HH mirror; budgets, labels, errors."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datakit import HH_DIR, HH_REAL, write_jsonl_gz

from katcli.data import schema
from katcli.data.datasets_source import make_specs
from katcli.data.download import DownloadOptions, download_pairs
from katcli.data.preference import parse_columns
from katcli.errors import ConfigError, KatError


def pid(text: str) -> str:
    return hashlib.md5(" ".join(text.split()).encode()).hexdigest()[:16]


def msgs(*turns: str) -> list[dict[str, str]]:
    """Alternating user/assistant messages, starting with user."""
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)]


def say(role: str, text: str) -> list[dict[str, str]]:
    return [{"role": role, "content": text}]


def parquet(root: Path, split: str, rows: list[dict], shard: int = 0, shards: int = 1) -> Path:
    f = root / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet"
    f.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), f)
    return root


def jsonl(root: Path, split: str, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def read(root: Path | str, *, splits=("train",), columns=None, budget=10_000, seed=0, builtin=(), from_dir=None):
    specs = make_specs((str(root),), config=None, splits=tuple(splits), columns=parse_columns(columns))
    mix = {s: Fraction(1) for s in (*builtin, specs[0].label)}
    opts = DownloadOptions(sources=tuple(builtin), budget=budget, mix=mix, seed=seed, from_dir=from_dir,
                           datasets=specs)
    out = io.BytesIO()
    report = download_pairs(opts, out)
    return report, [json.loads(x) for x in out.getvalue().splitlines()], out.getvalue()


def pair(id_, messages, chosen, rejected, src, split, dsplit="train"):
    return {"id": id_, "prefix": {"messages": messages}, "chosen": chosen, "rejected": rejected, "src": src,
            "split": split, "prefix_id": pid(messages[0]["content"]), "meta": {"split": dsplit}}


def test_conversational_implicit_prompt_parquet(tmp_path):
    q = "What is the boiling point of water?"
    root = parquet(tmp_path / "conv-implicit", "train", [
        {"chosen": msgs(q, "100 °C at sea level."), "rejected": msgs(q, "  50 °C.  ")},
        {"chosen": msgs("Hi", "Hello"), "rejected": msgs("Hi", "Hello")},  # a tie: no preference
        {"chosen": msgs("A?", "yes"), "rejected": msgs("B?", "no")},  # different prompts
        {"chosen": say("system", "Be brief.") + msgs("Why?", "Because."),
         "rejected": say("system", "Be brief.") + msgs("Why?", "No idea.")},  # kat's prefixes hold no system turn
        {"chosen": msgs("Thanks", ""), "rejected": msgs("Thanks", "You're welcome")},
    ])
    report, pairs, _ = read(root)
    assert pairs == [pair("conv-implicit/train/0:0", msgs(q), "100 °C at sea level.", "50 °C.", "conv-implicit",
                          "train")]
    st = report.stats["conv-implicit"].to_json()
    assert st["rows_read"] == 5 and st["pairs_kept"] == 1
    assert st["dropped"] == {"empty_reply": 1, "identical_replies": 1, "prefix_mismatch": 1, "unsupported_role": 1}


def test_conversational_explicit_prompt_jsonl_two_splits(tmp_path):
    root = tmp_path / "conv-explicit"
    jsonl(root, "train", [{"prompt": msgs("Name a colour."), "chosen": say("assistant", "Blue."),
                           "rejected": say("assistant", "Seven.")}])
    jsonl(root, "test", [
        {"prompt": msgs("Name a fruit."), "chosen": say("assistant", "Apple."), "rejected": say("assistant", "Rock.")},
        # replies that repeat the prompt (whole conversations in the reply columns): not doubled
        {"prompt": msgs("2+2?"), "chosen": msgs("2+2?", "4"), "rejected": msgs("2+2?", "22")},
    ])
    report, pairs, _ = read(root, splits=("train", "test"))
    assert pairs == [
        pair("conv-explicit/train/0:0", msgs("Name a colour."), "Blue.", "Seven.", "conv-explicit", "train"),
        pair("conv-explicit/test/0:0", msgs("Name a fruit."), "Apple.", "Rock.", "conv-explicit", "test", "test"),
        pair("conv-explicit/test/0:1", msgs("2+2?"), "4", "22", "conv-explicit", "test", "test"),
    ]
    assert report.stats["conv-explicit"].to_json()["kept_by_group"] == {"test": 2, "train": 1}


def test_multi_turn_prompt(tmp_path):
    prompt = msgs("I need a name for a cat.", "How about Miso?", "Something longer.")
    root = parquet(tmp_path / "multi", "train", [
        {"prompt": prompt, "chosen": say("assistant", "Bartholomew."), "rejected": say("assistant", "Cat.")},
        # consecutive user turns are merged, as in every source's prefix
        {"prompt": say("user", "First part.") + say("user", " Second part. "),
         "chosen": say("assistant", "Both read."), "rejected": say("assistant", "Huh?")},
        {"prompt": prompt[:2], "chosen": say("assistant", "a"), "rejected": say("assistant", "b")},  # ends with assistant
    ])
    report, pairs, _ = read(root)
    assert pairs == [
        pair("multi/train/0:0", prompt, "Bartholomew.", "Cat.", "multi", "train"),
        pair("multi/train/0:1", msgs("First part.\n\nSecond part."), "Both read.", "Huh?", "multi", "train"),
    ]
    assert report.stats["multi"].to_json()["dropped"] == {"prompt_not_ending_with_user": 1}


def test_standard_text_explicit_csv_and_implicit_jsonl(tmp_path):
    csv_root = tmp_path / "std-explicit"
    csv_root.mkdir()
    (csv_root / "train.csv").write_text(
        'prompt,chosen,rejected\n'
        '"The sky is",blue.,green.\n'
        '"\n\nHuman: Hi there\n\nAssistant:", Hello!, Go away.\n',  # HH markers: turns by the HH rules
        encoding="utf-8")
    _, pairs, _ = read(csv_root)
    assert pairs == [
        pair("std-explicit/train/0:0", msgs("The sky is"), "blue.", "green.", "std-explicit", "train"),
        pair("std-explicit/train/0:1", msgs("Hi there"), "Hello!", "Go away.", "std-explicit", "train"),
    ]
    root = jsonl(tmp_path / "std-implicit", "train", [
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
        {"chosen": "I like cats", "rejected": "I like cars"},  # cut back to the word boundary, not "I like ca"
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hi\n\nAssistant: Hey"},
        {"chosen": "Yes", "rejected": "No"},  # nothing shared
        {"chosen": "Same", "rejected": "Same"},
    ])
    report, pairs, _ = read(root)
    assert [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in pairs] == [
        (msgs("The sky is"), "blue.", "green."),
        (msgs("I like"), "cats", "cars"),
        (msgs("Hi"), "Hello", "Hey"),
    ]
    assert report.stats["std-implicit"].to_json()["dropped"] == {"identical_replies": 1, "no_shared_prompt": 1}


def test_columns_mapping(tmp_path):
    root = parquet(tmp_path / "mapped", "train", [
        {"question": "Capital of France?", "good": "Paris.", "bad": "Lyon.", "score": 3},
        {"question": "Capital of Peru?", "good": "Lima.", "bad": None, "score": 1},  # a null: dropped, counted
    ])
    report, pairs, _ = read(root, columns="prompt=question,chosen=good,rejected=bad")
    assert pairs == [pair("mapped/train/0:0", msgs("Capital of France?"), "Paris.", "Lyon.", "mapped", "train")]
    assert report.stats["mapped"].to_json()["dropped"] == {"null_value": 1}
    # `prompt=` reads no prompt column: whole conversations under other names
    root = parquet(tmp_path / "convs", "train", [
        {"prompt": "ignored", "yes": msgs("Hi", "Hello"), "no": msgs("Hi", "Bye")}])
    _, pairs, _ = read(root, columns="prompt=,chosen=yes,rejected=no")
    assert [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in pairs] == [(msgs("Hi"), "Hello", "Bye")]


def test_a_split_other_than_train_or_test_is_sided_by_prefix_id(tmp_path):
    rows = [{"prompt": f"Question {i}?", "chosen": "yes", "rejected": "no"} for i in range(200)]
    _, pairs, _ = read(jsonl(tmp_path / "val", "validation", rows), splits=("validation",))
    from katcli.data.keys import derived_split
    assert [p["split"] for p in pairs] == [derived_split(pid(f"Question {i}?")) for i in range(200)]
    assert {p["split"] for p in pairs} == {"train", "test"}


# -- the real HH rows, converted to TRL's format, give the HH mirror's pairs ---------------------------------
def hh_as_trl(row: dict) -> dict | None:
    """TRL's own HH-RLHF recipe (conversational, explicit prompt): the shared transcript up to its last Assistant
    marker is the prompt, split into turns at the markers; what follows the marker in each is the reply. Text before
    the first marker is kept as a system turn. None when the two share no marker (the recipe cannot convert it)."""
    c, r = row["chosen"], row["rejected"]
    n = next((i for i, (a, b) in enumerate(zip(c, r)) if a != b), min(len(c), len(r)))
    cut = c[:n].rfind("\n\nAssistant:")
    if cut < 0:
        return None
    parts = re.split(r"\n\n(Human|Assistant):", c[:cut])
    prompt = say("system", parts[0]) if parts[0].strip() else []
    for marker, content in zip(parts[1::2], parts[2::2]):
        prompt += say("user" if marker == "Human" else "assistant", content)
    start = cut + len("\n\nAssistant:")
    return {"prompt": prompt, "chosen": say("assistant", c[start:]), "rejected": say("assistant", r[start:])}


@pytest.mark.skipif(not HH_REAL.is_file(), reason="shared HH-RLHF rows not present")
def test_real_hh_rows_in_trl_format_give_the_mirror_pairs(tmp_path):
    with gzip.open(HH_REAL, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    mirror = tmp_path / "mirror"
    (mirror / HH_DIR / "harmless-base").mkdir(parents=True)
    shutil.copy(HH_REAL, mirror / HH_DIR / "harmless-base" / "test.jsonl.gz")
    hh_report, hh_pairs, _ = read_hh(mirror)
    converted = [t for t in map(hh_as_trl, rows) if t is not None]
    root = parquet(tmp_path / "hh-trl", "test", converted)
    report, pairs, _ = read(root, splits=("test",))

    def key(p):
        return p["prefix"]["messages"], p["chosen"], p["rejected"], p["split"], p["prefix_id"]

    assert len(hh_pairs) > 900
    assert [key(p) for p in pairs] == [key(p) for p in hh_pairs]
    st = report.stats["hh-trl"].to_json()
    assert st["rows_read"] + (len(rows) - len(converted)) == len(rows)
    assert st["dropped_total"] + (len(rows) - len(converted)) == hh_report.stats[schema.HH].to_json()["dropped_total"]


def read_hh(mirror: Path):
    out = io.BytesIO()
    report = download_pairs(DownloadOptions(sources=(schema.HH,), budget=10_000, mix={schema.HH: Fraction(1)},
                                            from_dir=str(mirror)), out)
    return report, [json.loads(x) for x in out.getvalue().splitlines()], out.getvalue()


# -- budgets, labels, streaming ------------------------------------------------------------------------------
def test_a_dataset_joins_the_mix_with_its_own_src_and_passes_a_shortfall_on(tmp_path):
    rows = [{"prompt": f"Q{i}?", "chosen": "good", "rejected": "bad"} for i in range(3)]
    root = jsonl(tmp_path / "tiny", "train", rows)
    report, pairs, _ = read(root, budget=20, builtin=(schema.HH,), from_dir="sample")
    assert [report.stats[s].pairs_kept for s in (schema.HH, "tiny")] == [17, 3]  # tiny holds 3: HH takes the rest
    assert [p["src"] for p in pairs] == [schema.HH] * 17 + ["tiny"] * 3
    big = jsonl(tmp_path / "big", "train", [{"prompt": f"Q{i}?", "chosen": "good", "rejected": "bad"}
                                             for i in range(100)])
    report, pairs, _ = read(big, budget=20, builtin=(schema.HH,), from_dir="sample")
    assert [report.stats[s].pairs_kept for s in (schema.HH, "big")] == [10, 10]
    assert report.stats["big"].rows_read == 10  # streamed: only its share is read


def test_streamed_selection_is_seeded_by_shard_and_reproducible(tmp_path):
    root = tmp_path / "sharded"
    for k in range(4):
        parquet(root, "train", [{"prompt": f"Q{k}-{i}?", "chosen": "y", "rejected": "n"} for i in range(50)], k, 4)
    runs = {seed: read(root, budget=60, seed=seed) for seed in (0, 1, 2, 3)}
    assert runs[0][2] == read(root, budget=60, seed=0)[2]
    for _, pairs, _ in runs.values():
        assert len(pairs) == 60 and runs[0][0].stats["sharded"].rows_read == 60
    assert len({tuple(p["id"] for p in pairs) for _, pairs, _ in runs.values()}) > 1  # the start shard is seeded


def test_labels_and_their_clashes():
    specs = make_specs(("org/my-prefs", "mine=./some/dir", "/data/x y/"), config=None, splits=("train",),
                       columns=parse_columns(None))
    assert [s.label for s in specs] == ["my-prefs", "mine", "x-y"]
    with pytest.raises(ConfigError, match=r"its label 'hh-rlhf' is already a built-in source's name"):
        make_specs(("Anthropic/hh-rlhf",), config=None, splits=("train",), columns=parse_columns(None))
    with pytest.raises(ConfigError, match=r"its label 'a' is already another --dataset's name"):
        make_specs(("org/a", "other/a"), config=None, splits=("train",), columns=parse_columns(None))


# -- errors --------------------------------------------------------------------------------------------------
EXPECTED = ("TRL's preference format: 'chosen' and 'rejected' (and optionally 'prompt'), each a string or a list "
            "of {'role', 'content'} messages")


def test_a_missing_column_names_the_column_the_row_and_the_format(tmp_path):
    root = jsonl(tmp_path / "bad", "train", [{"prompt": "Q?", "chosen": "a", "reject": "b"}])
    with pytest.raises(KatError) as e:
        read(root)
    assert str(e.value) == (f"row 1 of bad/train: column 'rejected' is missing; the dataset has 'prompt', 'chosen', "
                            f"'reject'; expected {EXPECTED} ({root / 'train.jsonl'}:1)")
    assert "--columns" in e.value.hint
    with pytest.raises(KatError, match=r"column 'question' \(--columns prompt=question\) is missing"):
        read(root, columns="prompt=question,rejected=reject")


def test_a_wrong_type_names_the_column_and_the_row(tmp_path):
    root = parquet(tmp_path / "typed", "train", [{"chosen": 1, "rejected": 2}])
    with pytest.raises(KatError) as e:
        read(root)
    f = root / "data" / "train-00000-of-00001.parquet"
    assert str(e.value) == (f"row 1 of typed/train: column 'chosen' is a number; expected a string or a list of "
                            f"{{'role', 'content'}} messages ({EXPECTED}) ({f}:1)")
    root = parquet(tmp_path / "roles", "train", [
        {"chosen": msgs("Hi", "a"), "rejected": msgs("Hi", "b")},
        {"chosen": [{"role": None, "content": "Hi"}], "rejected": msgs("Hi", "b")},
    ])
    with pytest.raises(KatError) as e:
        read(root)
    assert str(e.value) == ("row 2 of roles/train: column 'chosen': message 0's 'role' is null; expected a string "
                            f"({root / 'data' / 'train-00000-of-00001.parquet'}:2)")
    root = jsonl(tmp_path / "mixed", "train", [{"prompt": "Hi", "chosen": say("assistant", "a"),
                                               "rejected": say("assistant", "b")}])
    with pytest.raises(KatError, match=r"row 1 of mixed/train: column 'prompt' \(prompt\) is a string but 'chosen' "
                                       r"\(chosen\) is a list of messages"):
        read(root)


def test_unknown_split_config_and_not_a_dataset(tmp_path):
    root = jsonl(tmp_path / "one", "train", [{"prompt": "Q?", "chosen": "a", "rejected": "b"}])
    with pytest.raises(ConfigError, match=r"^--split dev: .*one has no split 'dev' \(it has train\)$"):
        read(root, splits=("dev",))
    specs = make_specs((str(root),), config="nope", splits=("train",), columns=parse_columns(None))
    with pytest.raises(ConfigError, match=r"^--config nope: .*BuilderConfig 'nope' not found"):
        download_pairs(DownloadOptions(sources=(), budget=5, mix={"one": Fraction(1)}, datasets=specs), io.BytesIO())
    (tmp_path / "empty").mkdir()
    with pytest.raises(KatError, match=r"^cannot read dataset .*empty: .*doesn't contain any data files"):
        read(tmp_path / "empty")
    with pytest.raises(ConfigError, match=r"is not a directory"):
        read(tmp_path / "missing-dir")


def test_a_hub_name_offline_and_not_cached_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(KatError, match=r"^cannot get nobody/no-such-prefs from the Hugging Face hub") as e:
        read("nobody/no-such-prefs")
    assert e.value.hint == ("no network? pass --dataset DIR (a local copy in the hub's layout), or fill the HF cache "
                            "once while online (`huggingface-cli download --repo-type dataset nobody/no-such-prefs`) "
                            "and set HF_HUB_OFFLINE=1")


def test_columns_flag_is_checked():
    with pytest.raises(ConfigError, match=r"--columns entries look like chosen=COLUMN"):
        parse_columns("answer=x")
    with pytest.raises(ConfigError, match=r"--columns: 'chosen' needs a column name"):
        parse_columns("chosen=")
    with pytest.raises(ConfigError, match=r"--columns names 'chosen' twice"):
        parse_columns("chosen=a,chosen=b")
    cols = parse_columns("prompt=q, rejected = r")
    assert (cols.prompt, cols.chosen, cols.rejected, cols.prompt_named) == ("q", "chosen", "r", True)


def test_hh_jsonl_gz_written_by_datakit_reads_as_a_dataset_too(tmp_path):
    """A directory holding `<split>.jsonl.gz` (HH's own file form) is a dataset in the hub's layout as well."""
    write_jsonl_gz(tmp_path / "gz" / "train.jsonl.gz", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Yo",
                                                         "rejected": "\n\nHuman: Hi\n\nAssistant: Go"}])
    _, pairs, _ = read(tmp_path / "gz")
    assert [(p["prefix"]["messages"], p["chosen"], p["rejected"]) for p in pairs] == [(msgs("Hi"), "Yo", "Go")]

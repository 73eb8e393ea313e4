"""Sources, budget and selection end to end in the data layer (no workspace): mirrors, the hub's offline
error, allocation across sources and sites, determinism."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import pytest
from datakit import HH_DIR, SE_DIR, UF_DIR, copy_sample, hh, write_jsonl_gz

from katcli.data import schema, sources
from katcli.data.download import DownloadOptions, download_pairs
from katcli.errors import ConfigError, KatError

ALL = schema.SOURCES
EQUAL = {s: Fraction(1) for s in ALL}


def run(from_dir, budget=10_000, srcs=ALL, mix=EQUAL, **kw):
    out = io.BytesIO()
    report = download_pairs(
        DownloadOptions(sources=tuple(srcs), budget=budget, mix=dict(mix), from_dir=str(from_dir), **kw), out
    )
    return report, [json.loads(x) for x in out.getvalue().splitlines()], out.getvalue()


def test_sample_mirror_covers_every_source_and_drop_reason():
    report, pairs, _ = run("sample")
    st = {s: report.stats[s].to_json() for s in ALL}
    assert st[schema.HH]["dropped"] == {
        "empty_reply": 2, "identical_replies": 2, "no_shared_prompt": 1,
        "prompt_not_ending_with_user": 1, "prompt_not_starting_with_user": 1,
    }
    assert st[schema.UF]["dropped"] == {
        "empty_reply": 1, "identical_replies": 1, "no_final_assistant_turn": 1, "prefix_mismatch": 1, "tie": 8,
    }
    assert st[schema.SE]["dropped"] == {
        "all_scores_tied": 3, "empty_reply": 1, "fewer_than_two_answers": 1, "identical_replies": 1,
    }
    assert len(pairs) == report.total_kept == sum(s["pairs_kept"] for s in st.values())
    assert [p["src"] for p in pairs] == sorted((p["src"] for p in pairs), key=ALL.index)  # hh, uf, se order
    for s in ALL:
        assert st[s]["rows_read"] == st[s]["pairs_kept"] + st[s]["dropped_total"]  # budget not binding here
    assert len({p["id"] for p in pairs}) == len(pairs)
    assert len({p["prefix_id"] for p in pairs}) >= 300
    assert {p["meta"]["site"] for p in pairs if p["src"] == schema.SE} >= {
        "cooking.stackexchange.com", "math.stackexchange.com", "superuser.com"}
    for p in pairs:
        msgs = p["prefix"]["messages"]
        assert msgs[0]["role"] == msgs[-1]["role"] == "user" and all(m["content"] for m in msgs)
        assert [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2) + ["user"]
        assert p["chosen"] and p["rejected"] and p["chosen"] != p["rejected"]
    assert report.notes == [f"budget 10000 not reached: the chosen sources gave {len(pairs)} pairs"]


def test_same_seed_same_bytes_and_another_seed_another_selection():
    _, a, raw_a = run("sample", budget=120, seed=3)
    _, _, raw_b = run("sample", budget=120, seed=3)
    _, c, _ = run("sample", budget=120, seed=4)
    assert raw_a == raw_b and len(a) == 120
    assert {p["id"] for p in a} != {p["id"] for p in c}


def test_budget_split_by_mix_and_shortfall_passed_on():
    report, pairs, _ = run("sample", budget=90)
    assert [report.stats[s].pairs_kept for s in ALL] == [30, 30, 30]
    report, _, _ = run("sample", budget=300, mix={schema.HH: Fraction(1), schema.UF: Fraction(1), schema.SE: Fraction(1)})
    kept = {s: report.stats[s].pairs_kept for s in ALL}
    assert kept[schema.SE] == report.stats[schema.SE].pairs_valid  # SE (68 pairs) cannot fill 100
    assert sum(kept.values()) == 300
    report, _, _ = run("sample", budget=40, mix={schema.HH: Fraction(3), schema.UF: Fraction(1), schema.SE: Fraction(0)})
    assert [report.stats[s].pairs_kept for s in ALL] == [30, 10, 0]


def test_hh_selection_spreads_over_subsets_and_splits():
    report, pairs, _ = run("sample", budget=60, srcs=[schema.HH], mix={schema.HH: Fraction(1)})
    groups = report.stats[schema.HH].kept_by_group
    assert sum(groups.values()) == 60 and len(groups) == 8  # 4 subsets x 2 splits all represented
    assert {p["split"] for p in pairs} == {"train", "test"}
    assert all(p["id"].startswith(f"hh/{p['meta']['subset']}/{p['split']}/") for p in pairs)


def test_se_truncated_read_spreads_over_sites():
    report, pairs, _ = run("sample", budget=15, srcs=[schema.SE], mix={schema.SE: Fraction(1)})
    sites = report.stats[schema.SE].kept_by_group
    assert sum(sites.values()) == 15 and len(sites) == 5 and max(sites.values()) - min(sites.values()) <= 1
    assert all(p["split"] in ("train", "test") for p in pairs)


def test_se_pairs_per_question():
    _, one, _ = run("sample", srcs=[schema.SE], mix={schema.SE: Fraction(1)})
    _, many, _ = run("sample", srcs=[schema.SE], mix={schema.SE: Fraction(1)}, se_pairs_per_question=3)
    assert len(many) > len(one)
    assert all(p["meta"]["pm_score_chosen"] > p["meta"]["pm_score_rejected"] for p in many)


def test_keep_ties():
    default, _, _ = run("sample", srcs=[schema.UF], mix={schema.UF: Fraction(1)})
    kept, _, _ = run("sample", srcs=[schema.UF], mix={schema.UF: Fraction(1)}, keep_ties=True)
    assert kept.stats[schema.UF].pairs_kept == default.stats[schema.UF].pairs_kept + 8


def test_partial_mirror_uses_what_is_there_and_says_what_is_missing(tmp_path):
    write_jsonl_gz(tmp_path / HH_DIR / "helpful-base" / "train.jsonl.gz",
                   [hh([("user", f"q{i}")], "good answer", "bad") for i in range(5)])
    report, pairs, _ = run(tmp_path, srcs=[schema.HH], mix={schema.HH: Fraction(1)})
    assert len(pairs) == 5
    missing = report.stats[schema.HH].missing
    assert "helpful-base/test" in missing and "harmless-base/train" in missing and len(missing) == 7
    assert report.notes[0].startswith(f"hh-rlhf: not in mirror {tmp_path}: harmless-base/train, harmless-base/test")


def test_a_chosen_source_with_nothing_in_the_mirror_is_an_error(tmp_path):
    copy_sample(tmp_path, "Anthropic")
    with pytest.raises(KatError) as err:
        run(tmp_path)
    assert err.value.message == f"ultrafeedback-binarized: the mirror {tmp_path} holds none of its files"
    assert err.value.hint.startswith(f"expected DIR/{UF_DIR}/data/")


def test_missing_from_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^--from: .*nope is not a directory"):
        run(tmp_path / "nope")


def test_hub_unreachable_is_a_clear_error_mentioning_from_and_the_offline_cache():
    # conftest sets HF_HUB_OFFLINE=1 and an empty HF_HOME: the hub path fails at once, never hangs.
    for source in ALL:
        with pytest.raises(KatError) as err:
            sources.locate(source, None)
        assert err.value.message.startswith(f"cannot get {sources.REPOS[source]} from the Hugging Face hub: ")
        assert "--from DIR" in err.value.hint and "HF_HUB_OFFLINE=1" in err.value.hint


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / SE_DIR / "data" / "x.stackexchange.com" / "train-00000-of-00001.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(KatError) as err:
        run(tmp_path, srcs=[schema.SE], mix={schema.SE: Fraction(1)})
    assert err.value.message.startswith("cannot read stack-exchange-preferences file: ")
    assert err.value.file == str(bad)


def test_every_row_dropped_is_an_error_listing_reasons(tmp_path):
    write_jsonl_gz(tmp_path / HH_DIR / "helpful-base" / "train.jsonl.gz", [hh([("user", "q")], "same", "same")])
    with pytest.raises(KatError, match=r"no valid pairs: 1 rows read, every one dropped \(identical_replies: 1\)"):
        run(tmp_path, srcs=[schema.HH], mix={schema.HH: Fraction(1)})

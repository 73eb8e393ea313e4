"""`kat report` on real workspaces: which sections appear, the numbers of `kat eval rm`, determinism, staleness.

The workspaces are built once per session from the built-in sample (tests/conftest.py, reportkit); each test
writes its report into a directory of its own inside them, so tests do not depend on one another's files.
"""

from __future__ import annotations

import json
import shutil

import pytest
from reportkit import TINY_RM, html_tables, markdown_tables, report_files

pytestmark = pytest.mark.slow


def _report(kat, ws, out: str, *extra: str):
    result = kat("report", "--out", out, "--threads", "1", "--device", "cpu", *extra, workspace=ws)
    assert result.exit_code == 0, result.output
    return result


def test_pairs_prefixes_and_embeddings_give_just_those_sections(kat, report_density_ws):
    result = _report(kat, report_density_ws, "r-density")
    out = report_density_ws / "r-density"
    assert result.stdout.splitlines() == [
        "Sections: Provenance, Prompt density",
        f"Figures: 1, each as PNG and PDF in {out}",
        f"Wrote {out / 'report.html'} ({result.stdout.split('report.html (')[1].split(')')[0]})",
        f"Wrote {out / 'report.md'}",
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "density-weights.pdf", "density-weights.png", "report.html", "report.md"
    ]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert [line for line in md.splitlines() if line.startswith("## ")] == ["## Provenance", "## Prompt density"]
    # The five rarest and five densest prompts, and the sources with their pair counts from the manifest.
    tables = markdown_tables(md)
    prompt_tables = [t for t in tables if t[0] == ["#", "Prefix id", "Weight × N", "Source", "Prompt"]]
    assert [len(t) - 1 for t in prompt_tables] == [5, 5]
    rare, dense = ([float(r[2]) for r in t[1:]] for t in prompt_tables)
    assert rare == sorted(rare, reverse=True) and dense == sorted(dense) and min(rare) > max(dense)
    sources = next(t for t in tables if t[0] == ["Source", "Pairs", "Prompts"])
    manifest = json.loads((report_density_ws / "manifest.json").read_text())
    total = manifest["runs"]["pairs"]["stats"]["pairs_total"]
    assert sources[-1] == ["all sources", f"{total:,}", f"{manifest['runs']['prefixes']['stats']['unique_prefixes']:,}"]


def test_tables_hold_the_numbers_of_kat_eval_rm_json(kat, report_rm_ws):
    _report(kat, report_rm_ws, "r-eval")
    evaluation = json.loads(kat("eval", "rm", "uniform", "density", "--json", "--threads", "1", "--device", "cpu",
                                workspace=report_rm_ws).stdout)
    models = evaluation["models"]
    assert [m["name"] for m in models] == ["uniform", "density"]

    def cell(acc):
        return f"{acc['accuracy']:.3f} ({acc['ci95'][0]:.3f}–{acc['ci95'][1]:.3f})"

    expected_quintiles = [
        [label, str(models[0]["by_quintile"][q]["n"]), *(cell(m["by_quintile"][q]) for m in models)]
        for q, label in enumerate(["Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"])
    ]
    expected_sources = [["overall", str(models[0]["overall"]["n"]), *(cell(m["overall"]) for m in models)]]
    expected_sources += [[s, str(models[0]["by_source"][s]["n"]), *(cell(m["by_source"][s]) for m in models)]
                         for s in sorted(models[0]["by_source"])]
    out = report_rm_ws / "r-eval"
    for tables in (html_tables((out / "report.html").read_text(encoding="utf-8")),
                   markdown_tables((out / "report.md").read_text(encoding="utf-8"))):
        quint = next(t for t in tables if t[0][:3] == ["Quintile", "Weight range", "Pairs"])
        assert quint[0] == ["Quintile", "Weight range", "Pairs", "uniform", "density", "Δ"]
        assert [[r[0], *r[2:5]] for r in quint[1:]] == expected_quintiles
        by_source = next(t for t in tables if t[0][:2] == ["Group", "Pairs"])
        assert [r[:4] for r in by_source[1:]] == expected_sources
        diffs = [float(r[5].split()[0]) for r in quint[1:]]
        cmp = evaluation["comparisons"][0]["by_quintile"]
        assert [r[5].split(" (", 1)[1] for r in quint[1:]] == [
            f"p = {q['mcnemar_p_holm']:.2g} Holm, MDD {q['mdd80']:.3f})" for q in cmp]
        want = [m1["accuracy"] - m0["accuracy"] for m0, m1 in zip(models[0]["by_quintile"], models[1]["by_quintile"])]
        assert diffs == pytest.approx(want, abs=5e-4)
    assert sum(q["n"] for q in models[0]["by_quintile"]) == evaluation["heldout"]["pairs"]


def test_two_runs_give_byte_identical_files(kat, report_rm_ws):
    _report(kat, report_rm_ws, "r-twice")
    first = report_files(report_rm_ws / "r-twice")
    _report(kat, report_rm_ws, "r-twice")
    second = report_files(report_rm_ws / "r-twice")
    assert sorted(first) == [
        "density-weights.pdf", "density-weights.png", "report.html", "report.md", "rm-quintiles.pdf",
        "rm-quintiles.png", "rm-sources.pdf", "rm-sources.png", "rm-training.pdf", "rm-training.png",
    ]
    assert [name for name in first if first[name] != second[name]] == []


def test_report_is_recorded_and_goes_stale_when_a_run_it_shows_changes(kat, report_rm_ws, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(report_rm_ws, ws)
    _report(kat, ws, "reports")

    def report_row():
        status = json.loads(kat("status", "--json", workspace=ws).stdout)
        return next(s for s in status["stages"] if s["key"] == "report")

    row = report_row()
    assert row["state"] == "ok"
    assert row["command"] == "kat report --out reports --threads 1 --device cpu"  # as recorded, minus -w
    assert {a["path"] for a in row["artifacts"]} >= {"reports/report.html", "reports/report.md"}
    manifest = json.loads((ws / "manifest.json").read_text())
    read = {i["path"] for i in manifest["runs"]["report"]["inputs"]}
    assert {"rm_checkpoints/uniform/metrics.jsonl", "data/embeddings_offline/density_weights.npy",
            "data/pairs_all.jsonl"} <= read

    kat("-q", "train", "rm", "--name", "uniform", "--depth", "1", "--max-steps", "4", "--batch-size", "8",
        "--max-len", "96", "--val-ratio", "0.2", "--eval-every", "0", "--save-every", "0", "--device", "cpu",
        "--threads", "1", workspace=ws)
    row = report_row()
    assert row["state"] == "stale"
    assert "its input rm_checkpoints/uniform/metrics.jsonl changed after this run" in row["reasons"]

    # A figure the new report no longer has is removed, not left behind.
    shutil.rmtree(ws / "rm_checkpoints")
    result = _report(kat, ws, "reports")
    assert "Removed 6 figure file(s) the previous report had" in result.stdout
    assert sorted(p.name for p in (ws / "reports").iterdir()) == [
        "density-weights.pdf", "density-weights.png", "report.html", "report.md"
    ]


def test_models_with_different_heldout_splits_get_a_figure_pair_each(kat, report_rm_ws, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(report_rm_ws, ws)
    args = list(TINY_RM)
    args[args.index("--val-ratio") + 1] = "0.3"
    kat("-q", "train", "rm", "--name", "other", *args, workspace=ws)
    result = _report(kat, ws, "reports")
    assert "Figures: 6" in result.stdout
    md = (ws / "reports" / "report.md").read_text(encoding="utf-8")
    assert "![Held-out accuracy by prompt density](rm-quintiles-2.png)" in md
    assert "the numbers are those of `kat eval rm uniform density --json`" in md
    assert "the numbers are those of `kat eval rm other --json`" in md


def test_models_that_cannot_be_evaluated_leave_a_note_not_an_error(kat, report_rm_ws, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(report_rm_ws, ws)
    pairs = ws / "data" / "pairs_all.jsonl"
    pairs.write_bytes(pairs.read_bytes() + pairs.read_bytes().splitlines(keepends=True)[0])
    result = _report(kat, ws, "reports")
    assert [line for line in result.stdout.splitlines() if line.startswith("Note: ")] == [
        "Note: uniform density not evaluated: rm_checkpoints/uniform/model_000006.pt is stale: its input "
        "data/pairs_all.jsonl changed after this run (run `kat -q train rm --name uniform --depth 1 --max-steps 6 "
        "--batch-size 8 --max-len 96 --lr 3e-3 --val-ratio 0.2 --eval-every 3 --save-every 0 --device cpu --threads 1`"
        " first)"
    ]
    md = (ws / "reports" / "report.md").read_text(encoding="utf-8")
    assert "rm-training.png" in md and "rm-quintiles.png" not in md
    assert "| pairs | modified |" in md
    assert "Not up to date: pairs is modified: data/pairs_all.jsonl changed after" in md

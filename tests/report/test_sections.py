"""Sections on files a test writes: training curves, the policies section, the density histogram, the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from katcli.report.build import build_report, render_report
from katcli.report.context import Evaluations, ReportContext
from katcli.report.curves import Metric, curves_figure, read_log, windows
from katcli.report.sections import policies
from katcli.report.sections.density import histogram


def _ctx(root: Path) -> tuple[ReportContext, list[str]]:
    read: list[str] = []

    def record(rel: str) -> Path:
        read.append(rel)
        return root / rel

    ctx = ReportContext(root=root, read=record, runs={}, status={"stages": []}, kat_version="0.0.test",
                        evaluate_rm=lambda: Evaluations([]))
    return ctx, read


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_windows_are_means_of_equal_step_groups():
    steps = np.arange(1, 21)
    assert windows(steps, steps.astype(float), n=4) == [(1, 5, 3.0), (6, 10, 8.0), (11, 15, 13.0), (16, 20, 18.0)]
    assert windows(np.arange(1, 3), np.array([1.0, 3.0])) == [(1, 1, 1.0), (2, 2, 3.0)]
    assert windows(np.array([], dtype=np.int64), np.array([])) == []


def test_curves_table_holds_the_window_means_and_the_evaluations(tmp_path):
    ctx, read = _ctx(tmp_path)
    rows = [{"step": s, "loss": float(s), "pairs": 4} for s in range(1, 21)]
    rows.insert(10, {"step": 10, "type": "eval", "overall": {"accuracy": 0.75}, "mean_loss": 0.5})
    _write_jsonl(tmp_path / "rm_checkpoints" / "a" / "metrics.jsonl", rows)
    log = read_log(ctx, "rm_checkpoints/a/metrics.jsonl", "a")
    assert read == ["rm_checkpoints/a/metrics.jsonl"]
    metrics = [Metric("loss", ("loss",), (("mean_loss",),)),
               Metric("accuracy", ("accuracy",), (("overall", "accuracy"),))]
    fig = curves_figure("t", "T", [log], metrics, unit="pairs")
    assert fig.table.columns == ("Run", "Steps", "loss")  # nobody logged a step accuracy: no panel
    assert fig.table.rows[:2] == (("a", "1–2", "1.5"), ("a", "3–4", "3.5"))
    assert fig.table.rows[-1] == ("a", "10 (held-out)", "0.5")
    assert "1 run (a: 20 steps, 80 pairs sampled)" in fig.caption
    assert curves_figure("t", "T", [log], metrics[1:]) is None


def test_a_metrics_line_without_a_step_is_located(tmp_path):
    from katcli.errors import KatError

    ctx, _ = _ctx(tmp_path)
    _write_jsonl(tmp_path / "m.jsonl", [{"step": 1, "loss": 1.0}, {"loss": 2.0}])
    with pytest.raises(KatError, match='integer "step"') as err:
        read_log(ctx, "m.jsonl", "m")
    assert err.value.line == 2


def _est(value, lo, hi, n, delta=None):
    return {"value": value, "ci95": [lo, hi], "n": n, "delta": delta}


def _policy_doc(reward_of: dict[str, float]) -> dict:
    """A small `kat.eval.policy/1` document: two policies, one reward model, reward `reward_of[p] + q/10` in Qq."""
    groups = {"overall": 10, "Q1": 2, "Q2": 2, "Q3": 2, "Q4": 2, "Q5": 2}
    measures = [
        {"key": "reward/judge", "family": "quality/judge", "label": "reward"},
        {"key": "win/judge", "family": "quality/judge", "label": "win"},
        {"key": "within/distinct-1", "family": "within", "label": "dist-1"},
        {"key": "across/vendi", "family": "across", "label": "Vendi"},
        {"key": "style/words", "family": "style", "label": "words"},
    ]
    results = {}
    for p, base in reward_of.items():
        delta = None if p == "sft/uniform" else _est(base - reward_of["sft/uniform"], -0.25, 0.5, 10)
        results[p] = {
            "reward/judge": {g: _est(base + (int(g[1]) / 10 if g != "overall" else 0), base - 1, base + 1, n,
                                     delta) for g, n in groups.items()},
            "within/distinct-1": {g: _est(0.5, 0.25, 0.75, n) for g, n in groups.items()},
            "across/vendi": {"overall": _est(3.0, 2.0, 4.0, 10), **{f"Q{k}": _est(None, None, None, 2)
                                                                      for k in range(1, 6)}},
            "style/words": {g: _est(12.0, 10.0, 14.0, n) for g, n in groups.items()},
        }
    return {
        "schema": "kat.eval.policy/1", "baseline": "sft/uniform",
        "policies": [{"name": p, "kind": p.split("/")[0]} for p in reward_of],
        "reward_models": [{"name": "judge", "path": "rm_checkpoints/judge", "step": 5}],
        "prompts": {"n": 10, "per_quintile": [2, 2, 2, 2, 2]},
        "sampling": {"samples": 3, "temperature": 1.0, "max_new_tokens": 16},
        "groups": groups, "measures": measures, "results": results, "notes": ["a note"],
    }


def _eval_run(root: Path, run: str, finished: str, doc: dict | None):
    from katcli.workspace import RunRecord

    if doc is not None:
        path = root / "eval" / "policy" / run / "evaluation.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc), encoding="utf-8")
    return RunRecord(key=f"eval-policy/{run}", stage="eval-policy", params={}, kat_version="0",
                     command=f"kat -w {root} -q eval policy sft/uniform dpo/density --rm judge",
                     started_at=finished, finished_at=finished)


def test_policies_section_from_training_logs_and_the_latest_policy_evaluation(tmp_path):
    ctx, read = _ctx(tmp_path)
    _write_jsonl(tmp_path / "sft_checkpoints" / "s" / "metrics.jsonl",
                 [{"step": k, "loss": 2.0 - k / 10} for k in range(1, 6)])
    _write_jsonl(tmp_path / "grpo_checkpoints" / "g" / "metrics.jsonl",
                 [{"step": k, "loss": 0.1, "reward": k / 5, "kl": 0.01 * k, "length": 40 + k} for k in range(1, 6)]
                 + [{"step": 5, "type": "eval", "reward": 0.9}])
    latest = _policy_doc({"sft/uniform": 1.0, "dpo/density": 1.5})
    older = _policy_doc({"sft/uniform": 7.0, "dpo/density": 9.0})
    runs = [_eval_run(tmp_path, "sft-uniform", "2026-01-02T00:00:00Z", latest),
            _eval_run(tmp_path, "dpo-density", "2026-01-01T23:59:59Z", latest),  # one second earlier, same document
            _eval_run(tmp_path, "aaa-older", "2026-01-01T00:00:00Z", older),
            _eval_run(tmp_path, "zzz-no-file", "2026-01-03T00:00:00Z", None)]  # an older kat kept no document
    ctx.runs = {r.key: r for r in runs}

    section = policies.build(ctx)
    assert [f.name for f in section.figures] == ["sft-training", "grpo-training", "policy-reward", "policy-diversity"]
    sft, grpo, reward, diversity = section.figures
    assert sft.table.columns == ("Run", "Steps", "loss")
    assert grpo.table.columns == ("Run", "Steps", "loss", "reward", "KL", "length")
    assert grpo.table.rows[-1] == ("g", "5 (held-out)", "–", "0.9", "–", "–")
    assert grpo.caption == ("Loss, reward, KL and length per training step for 1 run (g: 5 steps); thick lines and "
                            "the table are means over up to 10 equal step windows, squares are held-out evaluations.")
    assert sft.caption.startswith("Loss per training step for 1 run (s: 5 steps); ")
    assert "squares" not in sft.caption
    # The latest document by finish time; of its identical copies (one per policy of that evaluation) the first by
    # name, so the report does not depend on which policy's record happened to finish a second later.
    assert [r for r in read if r.startswith("eval/")] == ["eval/policy/dpo-density/evaluation.json"]
    assert reward.table.columns == ("Policy", "Group", "Prompts", "Reward (judge)", "Δ vs sft/uniform")
    assert reward.table.rows[:2] == (("sft/uniform", "all prompts", "10", "1 [0, 2]", "baseline"),
                                     ("sft/uniform", "Q1 commonest", "2", "1.1 [0, 2]", "baseline"))
    assert reward.table.rows[6] == ("dpo/density", "all prompts", "10", "1.5 [0.5, 2.5]", "+0.5 [-0.25, +0.5]")
    assert [r[1] for r in reward.table.rows[6:]] == ["all prompts", "Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"]
    assert [r[3].split(" ")[0] for r in reward.table.rows[7:]] == ["1.6", "1.7", "1.8", "1.9", "2"]
    assert reward.caption.startswith("Mean reward under the reward model judge (the first --rm) per policy, overall "
                                     "and per density quintile, on 10 held-out prompts (2/2/2/2/2 per density "
                                     "quintile), 3 samples each")
    assert reward.caption.endswith(" n = 2: intervals are wide.")
    assert diversity.table.columns == ("Measure", "Group", "Prompts", "sft/uniform", "dpo/density")
    assert [r[0] for r in diversity.table.rows] == (["dist-1 (within prompt)"] * 6 + ["Vendi (across prompts)"] * 6
                                                   + ["words (style)"] * 6)
    assert diversity.table.rows[6] == ("Vendi (across prompts)", "all prompts", "10", "3 [2, 4]", "3 [2, 4]")
    assert diversity.table.rows[7][3:] == ("–", "–")  # no across-prompt value on two prompts
    texts = [b.text for b in section.blocks if isinstance(b, policies.Paragraph)]
    assert texts[0].endswith("The numbers are those of `kat eval policy sft/uniform dpo/density --rm judge --json`, "
                             "kept in eval/policy/dpo-density/evaluation.json.")
    assert texts[1:] == ["Note: a note"]

    built = render_report(build_report(ctx))
    assert sorted(built.files) == sorted(
        ["report.html", "report.md"]
        + [f"{n}.{e}" for n in ("sft-training", "grpo-training", "policy-reward", "policy-diversity")
           for e in ("png", "pdf")]
    )
    assert built.section_titles == ["Policies"]
    assert render_report(build_report(ctx)).files == built.files


def test_a_policy_evaluation_that_is_not_one_is_located(tmp_path):
    from katcli.errors import KatError

    ctx, _ = _ctx(tmp_path)
    run = _eval_run(tmp_path, "sft-uniform", "2026-01-02T00:00:00Z", {"schema": "kat.eval.rm/1"})
    ctx.runs = {run.key: run}
    with pytest.raises(KatError, match="not a kat.eval.policy/1 document") as err:
        policies.build(ctx)
    assert err.value.file.endswith("eval/policy/sft-uniform/evaluation.json")
    (tmp_path / "eval" / "policy" / "sft-uniform" / "evaluation.json").write_text("{", encoding="utf-8")
    with pytest.raises(KatError, match="cannot read the policy evaluation"):
        policies.build(ctx)


def test_eval_policy_runs_without_a_document_leave_a_note(tmp_path):
    ctx, _ = _ctx(tmp_path)
    run = _eval_run(tmp_path, "sft-uniform", "2026-01-02T00:00:00Z", None)
    ctx.runs = {run.key: run}
    assert policies.build(ctx) is None
    assert ctx.notes == [("no `kat eval policy` run kept its evaluation.json (written by newer kat versions): re-run "
                          "`kat eval policy` to see its figures in the report")]


def test_sections_without_inputs_are_absent(tmp_path):
    ctx, read = _ctx(tmp_path)
    assert build_report(ctx).sections == []
    assert read == []


def test_histogram_bins_span_the_weights():
    counts, edges = histogram(np.array([0.5, 1.0, 2.0, 4.0]), bins=3)
    assert counts.tolist() == [1, 1, 2] and edges[0] == 0.5 and edges[-1] == 4.0
    counts, edges = histogram(np.ones(7))
    assert counts.tolist() == [7] and len(edges) == 2


def test_a_truncated_copy_of_an_older_evaluation_is_an_error_naming_it(tmp_path):
    """Every kept copy is read: a truncated one is never passed over because another copy is newer."""
    from katcli.errors import KatError

    ctx, _ = _ctx(tmp_path)
    doc = _policy_doc({"sft/uniform": 1.0, "dpo/density": 1.5})
    runs = [_eval_run(tmp_path, "sft-uniform", "2026-01-02T00:00:00Z", doc),
            _eval_run(tmp_path, "dpo-density", "2026-01-01T00:00:00Z", doc)]
    ctx.runs = {r.key: r for r in runs}
    broken = tmp_path / "eval" / "policy" / "dpo-density" / "evaluation.json"
    broken.write_bytes(broken.read_bytes()[:300])
    with pytest.raises(KatError, match="^cannot read the policy evaluation: ") as err:
        policies.build(ctx)
    assert err.value.file == str(broken)


def test_a_run_that_is_not_up_to_date_leads_the_report_as_a_finding(tmp_path):
    ctx, _ = _ctx(tmp_path)
    ctx.status = {"stages": [{"key": "eval-policy/dpo-uniform", "state": "modified", "artifacts": [],
                              "last_run": {"forced": False, "kat_version": "0"},
                              "reasons": ["eval/policy/dpo-uniform/generations.jsonl changed after `kat eval policy "
                                          "dpo/uniform` wrote it"], "command": "kat eval policy dpo/uniform"}]}
    report = build_report(ctx)
    assert report.sections[0].title == "Findings"
    assert report.sections[0].blocks[0].text == (
        "Not up to date — the numbers of these runs come from files changed after they were written, or from stale "
        "inputs: eval-policy/dpo-uniform is modified: eval/policy/dpo-uniform/generations.jsonl changed after "
        "`kat eval policy dpo/uniform` wrote it (re-run `kat eval policy dpo/uniform`)")
    ctx.status = {"stages": [{**ctx.status["stages"][0], "state": "ok", "reasons": []}]}
    assert "Findings" not in [s.title for s in build_report(ctx).sections]

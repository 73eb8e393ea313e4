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


def test_policies_section_from_training_logs_and_generations(tmp_path):
    ctx, read = _ctx(tmp_path)
    _write_jsonl(tmp_path / "sft_checkpoints" / "s" / "metrics.jsonl",
                 [{"step": k, "loss": 2.0 - k / 10} for k in range(1, 6)])
    _write_jsonl(tmp_path / "grpo_checkpoints" / "g" / "metrics.jsonl",
                 [{"step": k, "loss": 0.1, "reward": k / 5, "kl": 0.01 * k, "length": 40 + k} for k in range(1, 6)]
                 + [{"step": 5, "type": "eval", "reward": 0.9}])
    ids = [f"p{i}" for i in range(10)]
    weights = np.linspace(1, 10, 10).astype(np.float32)
    (tmp_path / "data" / "embeddings_offline").mkdir(parents=True)
    np.save(tmp_path / "data" / "embeddings_offline" / "density_weights.npy", weights / weights.sum())
    (tmp_path / "data" / "embeddings_offline" / "ids.json").write_text(json.dumps(ids))
    # Reward i for prompt p{i}: the rarer the prompt (higher weight), the higher the reward.
    _write_jsonl(tmp_path / "eval" / "policy" / "g" / "generations.jsonl",
                 [{"prefix_id": f"p{i}", "reward": float(i), "length": 10} for i in range(10)])

    section = policies.build(ctx)
    assert [f.name for f in section.figures] == ["sft-training", "grpo-training", "policy-eval"]
    sft, grpo, gen = section.figures
    assert sft.table.columns == ("Run", "Steps", "loss")
    assert grpo.table.columns == ("Run", "Steps", "loss", "reward", "KL", "length")
    assert grpo.table.rows[-1] == ("g", "5 (held-out)", "–", "0.9", "–", "–")
    assert grpo.caption == ("Loss, reward, KL and length per training step for 1 run (g: 5 steps); thick lines and "
                            "the table are means over up to 10 equal step windows, squares are held-out evaluations.")
    assert sft.caption.startswith("Loss per training step for 1 run (s: 5 steps); ")
    assert "squares" not in sft.caption
    assert gen.table.rows[0][:4] == ("g", "all", "10", "10")
    assert gen.table.rows[0][4].startswith("4.500 ± ")
    assert [r[1] for r in gen.table.rows[1:]] == ["Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"]
    assert [r[4].split(" ")[0] for r in gen.table.rows[1:]] == ["0.500", "2.500", "4.500", "6.500", "8.500"]
    assert "n = 10: intervals are wide." in gen.caption
    assert "eval/policy/g/generations.jsonl" in read and "data/embeddings_offline/density_weights.npy" in read

    built = render_report(build_report(ctx))
    assert sorted(built.files) == sorted(
        ["report.html", "report.md"] + [f"{n}.{e}" for n in ("sft-training", "grpo-training", "policy-eval")
                                        for e in ("png", "pdf")]
    )
    assert built.section_titles == ["Policies"]


def test_sections_without_inputs_are_absent(tmp_path):
    ctx, read = _ctx(tmp_path)
    assert build_report(ctx).sections == []
    assert read == []


def test_histogram_bins_span_the_weights():
    counts, edges = histogram(np.array([0.5, 1.0, 2.0, 4.0]), bins=3)
    assert counts.tolist() == [1, 1, 2] and edges[0] == 0.5 and edges[-1] == 4.0
    counts, edges = histogram(np.ones(7))
    assert counts.tolist() == [7] and len(edges) == 2

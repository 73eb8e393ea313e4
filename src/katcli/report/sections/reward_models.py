"""Reward models: training curves per run, and held-out accuracy per density quintile and per source.

Curves come from `rm_checkpoints/<name>/metrics.jsonl`. Held-out accuracies are exactly what `kat eval rm --json`
prints (`ctx.evaluate_rm`, one `kat.eval.rm/1` document per shared held-out set), drawn with their Wilson 95%
intervals, the models side by side (uniform first); nothing is recomputed here. Present when a reward model has a
metrics log or an evaluation.
"""

from __future__ import annotations

from typing import Any

from katcli.report.context import ReportContext
from katcli.report.curves import Metric, curves_figure, read_logs
from katcli.report.document import Figure, Paragraph, Section, small_sample_note, table
from katcli.report.plotting import run_colour
from katcli.report.sections import SectionSpec
from katcli.train.metrics import accuracy_cell, quintile_label
from katcli.workspace import paths as P

METRICS = (
    Metric("loss", ("loss",), (("mean_loss",),)),
    Metric("accuracy", ("accuracy",), (("overall", "accuracy"),)),
)


def cell(acc: dict[str, Any] | None) -> str:
    """`0.625 (0.473–0.756)`: accuracy and its Wilson 95% interval, one digit more than the terminal shows."""
    return accuracy_cell(acc, ci_digits=3)


def _delta(accs: list[dict[str, Any] | None], arms: bool = False) -> list[str]:
    """The second model's accuracy minus the first's; with `arms`, each other model's (models are uniform first)."""
    if len(accs) < 2 or (len(accs) > 2 and not arms):
        return []
    a = accs[0]
    return ["–" if a is None or b is None or not a["n"] or not b["n"] else f"{b['accuracy'] - a['accuracy']:+.3f}"
            for b in accs[1:]]


def delta_columns(models: list[str], arms: bool = False) -> list[str]:
    """"Δ" for a pair of models; with `arms` (several weightings compared), one "Δ NAME" per arm against the first."""
    if len(models) < 2 or (len(models) > 2 and not arms):
        return []
    return ["Δ"] if len(models) == 2 else [f"Δ {m}" for m in models[1:]]


def _interval_drawing(groups: list[tuple[str, list[dict | None]]], models: list[str], xlabel: str) -> Any:
    """Accuracy points with Wilson error bars per group, the models side by side."""
    def draw(fig) -> None:
        ax = fig.add_subplot()
        width = 0.7 / max(1, len(models))
        for m, model in enumerate(models):
            xs, ys, lo, hi = [], [], [], []
            for g, (_, accs) in enumerate(groups):
                acc = accs[m]
                if acc is None or not acc["n"]:
                    continue
                xs.append(g + (m - (len(models) - 1) / 2) * width)
                ys.append(acc["accuracy"])
                lo.append(acc["accuracy"] - acc["ci95"][0])
                hi.append(acc["ci95"][1] - acc["accuracy"])
            # A DPO policy (an implicit reward model) shares its sampling mode's colour with the reward model of
            # that mode; the marker tells them apart.
            marker = "s" if model.startswith("dpo/") else "o"
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=marker, capsize=3, color=run_colour(model, m), label=model)
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(groups)), [label for label, _ in groups])
        ax.set_ylim(0, 1.03)
        ax.set_ylabel("held-out accuracy (95% Wilson)")
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=7)

    return draw


def _eval_figures(doc: dict[str, Any], suffix: str) -> list[Figure]:
    models = [m["name"] for m in doc["models"]]
    held = doc["heldout"]
    what = f"{held['pairs']:,} held-out pairs from {held['prompts']:,} prompts (--seed {held['seed']})"
    arms = any(m.get("weights") for m in doc["models"])  # a named weight set: every arm gets its Δ
    cols_models = models + delta_columns(models, arms)
    figures = []
    if all(m["by_quintile"] is not None for m in doc["models"]):
        groups, rows = [], []
        ranges = doc.get("quintile_weight_ranges") or []
        n = len(doc["models"][0]["by_quintile"])
        for q in range(n):
            accs = [m["by_quintile"][q] for m in doc["models"]]
            groups.append((f"Q{q + 1}", accs))
            rng = ranges[q] if q < len(ranges) and ranges[q] else None
            rows.append([quintile_label(q, n), f"{rng[0]:.3g}–{rng[1]:.3g}" if rng else "–", f"{accs[0]['n']:,}",
                         *(cell(a) for a in accs), *_delta(accs, arms)])
        smallest = min(a["n"] for _, accs in groups for a in accs)
        caption = (f"Held-out accuracy per density quintile (Q1 commonest … Q5 rarest prompts) with Wilson 95% "
                   f"intervals, {' vs '.join(models)}, on {what}.{small_sample_note(smallest)}")
        draw = _interval_drawing(groups, models, "density quintile of the prompt")
        figures.append(Figure(f"rm-quintiles{suffix}", "Held-out accuracy by prompt density", caption, draw,
                              table(["Quintile", "Weight range", "Pairs", *cols_models], rows)))
    sources = sorted({s for m in doc["models"] for s in m["by_source"]})
    groups = [("overall", [m["overall"] for m in doc["models"]])]
    groups += [(s, [m["by_source"].get(s) for m in doc["models"]]) for s in sources]
    rows = []
    for label, accs in groups:
        n = next((a["n"] for a in accs if a is not None), 0)
        rows.append([label, f"{n:,}", *(cell(a) for a in accs), *_delta(accs, arms)])
    smallest = min((a["n"] for _, accs in groups for a in accs if a is not None), default=0)
    caption = (f"Held-out accuracy overall and per source with Wilson 95% intervals, {' vs '.join(models)}, on "
               f"{what}.{small_sample_note(smallest)}")
    draw = _interval_drawing(groups, models, "source")
    figures.append(Figure(f"rm-sources{suffix}", "Held-out accuracy by source", caption, draw,
                          table(["Group", "Pairs", *cols_models], rows), size=(7.0, 3.4)))
    return figures


def _sampling(model: dict[str, Any]) -> str:
    """`per-prompt sampling`, and the weight set when a named one (`kat embed --name`) was sampled by."""
    weights = model.get("weights")
    return f"{model['weighting']} sampling" + (f" by weight set {weights}" if weights else "")


def build(ctx: ReportContext) -> Section | None:
    # Uniform runs first, as in the evaluations below, so a run keeps its colour from figure to figure.
    aware = {r.key.split("/", 1)[1]: bool(r.params.get("density_aware")) for r in ctx.runs_of("rm")}
    logs = sorted(read_logs(ctx, P.RM_DIR), key=lambda log: (aware.get(log.name, False), log.name))
    evaluations = ctx.evaluate_rm()
    ctx.notes.extend(evaluations.notes)
    if not logs and not evaluations.results:
        return None
    section = Section("reward-models", "Reward models")
    curves = curves_figure("rm-training", "Reward-model training", logs, METRICS, unit="pairs")
    if curves is not None:
        section.add(curves)
    for k, doc in enumerate(evaluations.results):
        models = doc["models"]
        section.add(Paragraph(
            "Held-out set: " + ", ".join(f"{m['name']} ({_sampling(m)}, step {m['step']:,})" for m in models)
            + f" on {doc['heldout']['pairs']:,} pairs from {doc['heldout']['prompts']:,} prompts that no training "
            f"pair shares; the numbers are those of `kat eval rm {' '.join(m['name'] for m in models)} --json`."))
        section.add(*_eval_figures(doc, "" if k == 0 else f"-{k + 1}"))
        for note in doc.get("notes", []):
            section.add(Paragraph(f"Note: {note}"))
    for note in evaluations.notes:
        section.add(Paragraph(f"Note: {note}"))
    return section


SPEC = SectionSpec("reward-models", "Reward models", build)

"""Policies: SFT, DPO and GRPO training curves, and the latest `kat eval policy` generations per run.

Curves come from `{sft,dpo,grpo}_checkpoints/<name>/metrics.jsonl` (the training core's common log format, see
`katcli.report.curves`): loss, reward, KL and length panels, each shown when some run logged it. Generations come
from `eval/policy/<run>/generations.jsonl`, one JSON object per generation; the fields used are `reward` (a
number, required for a generation to count), `length` (tokens, optional) and `prefix_id` (optional: with the
workspace's density weights it places the generation in its prompt's density quintile, by the same rule as
`kat eval rm`). Means carry normal-approximation 95% intervals. Present when any of these files exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from katcli.errors import KatError
from katcli.report.context import ReportContext
from katcli.report.curves import Metric, curves_figure, read_logs
from katcli.report.document import Figure, Paragraph, Section, fmt, small_sample_note, table
from katcli.report.plotting import colour
from katcli.report.sections import SectionSpec
from katcli.train.metrics import Z95, density_quintiles, quintile_label
from katcli.workspace import paths as P
from katcli.workspace.jsonl import iter_json_lines

KINDS = (("sft", "SFT", P.SFT_DIR), ("dpo", "DPO", P.DPO_DIR), ("grpo", "GRPO", P.GRPO_DIR))
METRICS = (
    Metric("loss", ("loss",), (("loss",), ("mean_loss",))),
    Metric("reward", ("reward", "reward_mean", "rewards/margins"),
           (("reward",), ("reward_mean",), ("overall", "sampled_reward"))),
    Metric("KL", ("kl", "kl_mean"), (("kl",),)),
    Metric("length", ("length", "completion_length", "mean_length", "completions/mean_length"),
           (("length",), ("overall", "sampled_length"))),
)
GENERATIONS = "generations.jsonl"


@dataclass(frozen=True)
class Mean:
    n: int
    mean: float
    half_width: float  # of the normal-approximation 95% interval; NaN below two values

    @classmethod
    def of(cls, values: list[float]) -> Mean:
        x = np.asarray(values, dtype=np.float64)
        if not len(x):
            return cls(0, math.nan, math.nan)
        half = Z95 * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
        return cls(len(x), float(x.mean()), half)

    def cell(self) -> str:
        if not self.n:
            return "–"
        return fmt(self.mean) + ("" if math.isnan(self.half_width) else f" ± {fmt(self.half_width)}")


@dataclass
class Generations:
    run: str
    rewards: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    prefix_ids: list[str | None] = field(default_factory=list)  # per reward


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_generations(ctx: ReportContext, run: str) -> Generations:
    rel = f"{P.EVAL_POLICY_DIR}/{run}/{GENERATIONS}"
    out = Generations(run)
    hint = f"re-run `kat eval policy` for {run}"
    for lineno, row in iter_json_lines(ctx.read(rel), hint=hint, name="generations file"):
        if not isinstance(row, dict):
            raise KatError("a generation must be a JSON object", file=str(ctx.root / rel), line=lineno, hint=hint)
        if _number(row.get("reward")):
            out.rewards.append(float(row["reward"]))
            pid = row.get("prefix_id")
            out.prefix_ids.append(pid if isinstance(pid, str) else None)
        if _number(row.get("length")):
            out.lengths.append(float(row["length"]))
    return out


def _weights(ctx: ReportContext) -> dict[str, float] | None:
    if not (ctx.exists(P.DENSITY_WEIGHTS) and ctx.exists(P.EMBED_IDS)):
        return None
    import json

    ids = json.loads(ctx.read(P.EMBED_IDS).read_text(encoding="utf-8"))
    w = np.load(ctx.read(P.DENSITY_WEIGHTS), allow_pickle=False)
    if len(ids) != len(w):
        return None
    return {str(i): float(v) for i, v in zip(ids, w)}


def quintile_means(gen: Generations, weights: dict[str, float]) -> list[Mean] | None:
    """Mean reward per density quintile of the generations' prompts (Q1 commonest), or None without prompt ids."""
    pids = gen.prefix_ids
    if not pids or any(p is None or p not in weights for p in pids):
        return None
    quint, _ = density_quintiles(pids, weights)  # type: ignore[arg-type]
    return [Mean.of([r for r, q in zip(gen.rewards, quint) if q == k]) for k in range(5)]


def _eval_figure(gens: list[Generations], weights: dict[str, float] | None) -> Figure:
    overall = [Mean.of(g.rewards) for g in gens]
    by_q = {g.run: quintile_means(g, weights) for g in gens} if weights is not None else {}
    with_q = [g for g in gens if by_q.get(g.run)]

    def draw(fig) -> None:
        axes = fig.subplots(1, 2 if with_q else 1, squeeze=False)[0]
        ax = axes[0]
        for k, (g, m) in enumerate(zip(gens, overall)):
            ax.errorbar([k], [m.mean], yerr=[[0 if math.isnan(m.half_width) else m.half_width]] * 2, fmt="o",
                        capsize=3, color=colour(k))
        ax.set_xticks(range(len(gens)), [g.run for g in gens])
        ax.set_ylabel("mean reward (95% interval)")
        ax.set_title("all prompts")
        if with_q:
            ax = axes[1]
            for g in with_q:
                ms = by_q[g.run]
                k = gens.index(g)
                ax.errorbar(range(1, 6), [m.mean for m in ms], color=colour(k), marker="o", capsize=3, label=g.run,
                            yerr=[0 if math.isnan(m.half_width) else m.half_width for m in ms])
            ax.set_xticks(range(1, 6), ["Q1", "Q2", "Q3", "Q4", "Q5"])
            ax.set_xlabel("density quintile (Q1 commonest … Q5 rarest)")
            ax.set_title("by prompt density")
            ax.legend(fontsize=7)

    rows = []
    for g, m in zip(gens, overall):
        rows.append([g.run, "all", f"{m.n:,}", f"{len({p for p in g.prefix_ids if p}):,}", m.cell(),
                     Mean.of(g.lengths).cell()])
        for q, qm in enumerate(by_q.get(g.run) or []):
            rows.append([g.run, quintile_label(q), f"{qm.n:,}", "–", qm.cell(), "–"])
    smallest = min((m.n for m in overall), default=0)
    caption = (f"Mean reward of the latest `kat eval policy` generations for {len(gens)} run"
               f"{'s' if len(gens) != 1 else ''} ({', '.join(f'{g.run}: {len(g.rewards):,}' for g in gens)} "
               f"generations){', overall and per density quintile' if with_q else ''}, with 95% intervals."
               f"{small_sample_note(smallest)}")
    return Figure("policy-eval", "Policy generations", caption, draw,
                  table(["Run", "Group", "Generations", "Prompts", "Reward", "Length"], rows),
                  size=(9.0 if with_q else 5.0, 3.4))


def build(ctx: ReportContext) -> Section | None:
    section = Section("policies", "Policies")
    for key, label, parent in KINDS:
        logs = read_logs(ctx, parent)
        fig = curves_figure(f"{key}-training", f"{label} training", logs, METRICS)
        if fig is not None:
            section.add(fig)
    gens = [read_generations(ctx, run) for run in ctx.run_dirs(P.EVAL_POLICY_DIR, GENERATIONS)]
    gens = [g for g in gens if g.rewards]
    if gens:
        section.add(Paragraph("Generations of the latest `kat eval policy` run per policy, scored by its reward."))
        section.add(_eval_figure(gens, _weights(ctx)))
    return section if section.blocks else None


SPEC = SectionSpec("policies", "Policies", build)

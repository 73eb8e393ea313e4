"""Policies: SFT, DPO, GRPO, KTO and PPO training curves, and the latest `kat eval policy` evaluation.

Curves come from `{sft,dpo,grpo,kto,ppo}_checkpoints/<name>/metrics.jsonl` (the training core's common log format, see
`katcli.report.curves`): loss, reward, KL and length panels, each shown when some run logged it. The evaluation is
the `kat.eval.policy/1` document `kat eval policy` keeps in `eval/policy/<run>/evaluation.json` (what its `--json`
prints, less the wall-clock timings), taken from the eval-policy run that finished last (ties: the run name last
in order); its values, bootstrap intervals and paired Δ are drawn and tabulated as they are, nothing is
recomputed. Reward is under the document's first reward model. Present when a curve or an evaluation exists.
"""

from __future__ import annotations

import json
from typing import Any

from katcli.errors import KatError
from katcli.report.context import ReportContext
from katcli.report.curves import Metric, curves_figure, read_logs
from katcli.report.document import Figure, Paragraph, Section, fmt_sig, small_sample_note, table
from katcli.report.plotting import run_colour
from katcli.report.sections import SectionSpec
from katcli.train.metrics import quintile_label
from katcli.workspace import paths as P

KINDS = (("sft", "SFT", P.SFT_DIR), ("dpo", "DPO", P.DPO_DIR), ("grpo", "GRPO", P.GRPO_DIR),
         ("kto", "KTO", P.KTO_DIR), ("ppo", "PPO", P.PPO_DIR))
METRICS = (
    Metric("loss", ("loss",), (("loss",), ("mean_loss",))),
    Metric("reward", ("reward", "reward_mean", "rewards/margins"),
           (("reward",), ("reward_mean",), ("overall", "sampled_reward"))),
    Metric("KL", ("kl", "kl_mean", "objective/kl"), (("kl",),)),
    Metric("length", ("length", "completion_length", "mean_length", "completions/mean_length"),
           (("length",), ("overall", "sampled_length"))),
)
SCHEMA = "kat.eval.policy/1"  # katcli.evaluation.measures.SCHEMA, without importing the evaluation code
DIVERSITY_FAMILIES = ("within", "across")
#: Colour tells the sampling mode (`run_colour`), the marker the policy's kind.
MARKERS = {"sft": "o", "dpo": "s", "grpo": "^", "kto": "v", "ppo": "P"}
FAMILY_NAMES = {"within": "within prompt", "across": "across prompts", "style": "style"}


def estimate_cell(est: dict[str, Any] | None, signed: bool = False) -> str:
    """`0.4123 [0.3561, 0.4702]`: a value and its 95% bootstrap interval to 4 significant digits; `–` if none."""
    if not est or est.get("value") is None:
        return "–"
    lo, hi = est.get("ci95") or (None, None)
    value = fmt_sig(est["value"], signed=signed)
    if lo is None or hi is None:
        return value
    return f"{value} [{fmt_sig(lo, signed=signed)}, {fmt_sig(hi, signed=signed)}]"


def delta_cell(est: dict[str, Any] | None) -> str:
    """A paired Δ with its interval, its p-value (Holm-adjusted over the quintiles) and its 80%-power MDD."""
    text = estimate_cell(est, signed=True)
    if not est or est.get("p") is None:
        return text
    p = est.get("p_holm", est["p"])
    mdd = est.get("mdd80")
    return text + f" p = {p:.2g}" + (" Holm" if "p_holm" in est else "") + (f", MDD {fmt_sig(mdd)}" if mdd else "")


def latest_evaluation(ctx: ReportContext) -> tuple[str, str, dict[str, Any]] | None:
    """(file, command, document) of the eval-policy run that finished last and kept its document, or None."""
    kept = []
    for r in ctx.runs_of("eval-policy"):
        rel = f"{P.EVAL_POLICY_DIR}/{r.key.split('/', 1)[1]}/{P.EVAL_POLICY_DOCUMENT}"
        if ctx.exists(rel):
            # From the stage on: the global options before it (`-w PATH`) would tie the report to one directory.
            at = r.command.find("eval policy")
            kept.append((r.finished_at, r.key, rel, "kat " + r.command[at:] if at >= 0 else "kat eval policy"))
    if not kept:
        if ctx.runs_of("eval-policy"):
            ctx.notes.append("no `kat eval policy` run kept its evaluation.json (written by newer kat versions): "
                             "re-run `kat eval policy` to see its figures in the report")
        return None
    # Every policy of one evaluation keeps the same document, and they finish within a second or two of each other:
    # which of them finished last is timing, so the file quoted (and recorded) is the first by name among the
    # copies of the latest document.
    _, _, latest_rel, command = max(kept)
    hint = "re-run `kat eval policy`, which rewrites it"
    docs = {}
    for _, _, r, _ in kept:  # every copy must parse: a truncated one is an error, never silently passed over
        try:
            doc = json.loads((ctx.root / r).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KatError(f"cannot read the policy evaluation: {exc}", file=str(ctx.root / r), hint=hint) from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise KatError(f"the policy evaluation is not a {SCHEMA} document", file=str(ctx.root / r), hint=hint)
        docs[r] = doc
    latest_bytes = (ctx.root / latest_rel).read_bytes()
    rel = min(r for _, _, r, _ in kept if (ctx.root / r).read_bytes() == latest_bytes)
    ctx.read(rel)
    return rel, command, docs[rel]


def _groups(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(group key, label): all prompts, then the density quintiles the evaluation has."""
    quintiles = [g for g in (f"Q{k + 1}" for k in range(5)) if g in doc["groups"]]
    return [("overall", "all prompts")] + [(g, quintile_label(int(g[1:]) - 1)) for g in quintiles]


def _estimate(doc: dict[str, Any], policy: str, key: str, group: str) -> dict[str, Any] | None:
    return doc["results"].get(policy, {}).get(key, {}).get(group)


def _draw_points(ax, doc: dict[str, Any], key: str, groups: list[tuple[str, str]]) -> None:
    """One point per policy and group with its 95% interval, the policies side by side."""
    names = [p["name"] for p in doc["policies"]]
    width = 0.75 / max(1, len(names))
    for k, policy in enumerate(doc["policies"]):
        name = policy["name"]
        xs, ys, lo, hi = [], [], [], []
        for g, (group, _) in enumerate(groups):
            est = _estimate(doc, name, key, group)
            if not est or est.get("value") is None:
                continue
            v, (a, b) = est["value"], est.get("ci95") or (None, None)
            xs.append(g + (k - (len(names) - 1) / 2) * width)
            ys.append(v)
            lo.append(0.0 if a is None else max(0.0, v - a))
            hi.append(0.0 if b is None else max(0.0, b - v))
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt=MARKERS.get(policy.get("kind"), "D"), markersize=3.5, capsize=2,
                    color=run_colour(name, k), label=name)
    ax.set_xticks(range(len(groups)), ["all" if g == "overall" else g for g, _ in groups])
    if len(groups) > 1:
        ax.axvline(0.5, color="grey", linewidth=0.6)


def _legend(fig, ax, n: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(n, 6), fontsize=7)


def _what(doc: dict[str, Any]) -> str:
    p, s = doc["prompts"], doc["sampling"]
    per_q = p.get("per_quintile")
    spread = f" ({'/'.join(str(n) for n in per_q)} per density quintile)" if per_q else ""
    return (f"{p['n']:,} held-out prompts{spread}, {s['samples']} sample{'s' if s['samples'] != 1 else ''} each "
            f"(temperature {s['temperature']:g}, at most {s['max_new_tokens']} new tokens)")


def _smallest(doc: dict[str, Any], groups: list[tuple[str, str]]) -> int:
    return min(int(doc["groups"][g]) for g, _ in groups)


def reward_figure(doc: dict[str, Any]) -> Figure | None:
    """Mean reward under the first reward model per policy, overall and per quintile, and the Δ vs the baseline."""
    if not doc["reward_models"]:
        return None
    rm = doc["reward_models"][0]["name"]
    key, base = f"reward/{rm}", doc["baseline"]
    groups = _groups(doc)

    def draw(fig) -> None:
        ax = fig.add_subplot()
        _draw_points(ax, doc, key, groups)
        _legend(fig, ax, len(doc["policies"]))
        ax.set_ylabel(f"mean reward under {rm} (95% CI)")
        ax.set_xlabel("prompts: all, then by density quintile (Q1 commonest … Q5 rarest)")

    rows = []
    for p in doc["policies"]:
        for group, label in groups:
            est = _estimate(doc, p["name"], key, group)
            delta = "baseline" if p["name"] == base else delta_cell((est or {}).get("delta"))
            rows.append([p["name"], label, f"{doc['groups'][group]:,}", estimate_cell(est), delta])
    caption = (f"Mean reward under the reward model {rm} (the first --rm) per policy, overall and per density quintile, on {_what(doc)}; 95% "
               f"bootstrap intervals over prompts, Δ against {base} paired on the same prompts (p per quintile "
               "Holm-adjusted over the five; MDD: the smallest Δ detected with 80% power at α = .05)."
               f"{small_sample_note(_smallest(doc, groups))}")
    return Figure("policy-reward", "Policy reward by prompt density", caption, draw,
                  table(["Policy", "Group", "Prompts", f"Reward ({rm})", f"Δ vs {base}"], rows,
                        numeric=(False, False, True, True, True)), size=(8.0, 3.8))


def diversity_figure(doc: dict[str, Any]) -> Figure | None:
    """Every within- and across-prompt diversity measure per policy, overall and per quintile; style in the table."""
    shown = [m for m in doc["measures"] if m["family"] in DIVERSITY_FAMILIES]
    if not shown:
        return None
    listed = shown + [m for m in doc["measures"] if m["family"] == "style"]
    groups = _groups(doc)
    cols = min(4, len(shown))
    nrows = -(-len(shown) // cols)

    def draw(fig) -> None:
        axes = fig.subplots(nrows, cols, squeeze=False)
        for k, m in enumerate(shown):
            ax = axes[k // cols][k % cols]
            _draw_points(ax, doc, m["key"], groups)
            ax.set_title(f"{m['label']} ({FAMILY_NAMES[m['family']]})", fontsize=8)
            ax.tick_params(labelsize=7)
        for k in range(len(shown), nrows * cols):
            axes[k // cols][k % cols].set_visible(False)
        _legend(fig, axes[0][0], len(doc["policies"]))

    names = [p["name"] for p in doc["policies"]]
    rows = []
    for m in listed:
        for group, label in groups:
            rows.append([f"{m['label']} ({FAMILY_NAMES[m['family']]})", label, f"{doc['groups'][group]:,}",
                         *(estimate_cell(_estimate(doc, n, m["key"], group)) for n in names)])
    caption = (f"Diversity of each policy's replies, within a prompt (its samples) and across prompts (one reply "
               f"each), overall and per density quintile, on {_what(doc)}; 95% bootstrap intervals over prompts "
               f"(bias-corrected for across-prompt measures); the table adds the style measures."
               f"{small_sample_note(_smallest(doc, groups))}")
    return Figure("policy-diversity", "Policy diversity by prompt density", caption, draw,
                  table(["Measure", "Group", "Prompts", *names], rows,
                        numeric=(False, False, *[True] * (1 + len(names)))), size=(11.0, 2.6 * nrows + 0.6))


def build(ctx: ReportContext) -> Section | None:
    section = Section("policies", "Policies")
    for key, label, parent in KINDS:
        logs = read_logs(ctx, parent)
        fig = curves_figure(f"{key}-training", f"{label} training", logs, METRICS)
        if fig is not None:
            section.add(fig)
    latest = latest_evaluation(ctx)
    if latest is not None:
        rel, command, doc = latest
        rms = ", ".join(r["name"] for r in doc["reward_models"]) or "none"
        section.add(Paragraph(
            f"The latest `kat eval policy`: {', '.join(p['name'] for p in doc['policies'])} (baseline "
            f"{doc['baseline']}) on the same {_what(doc)}; reward models: {rms}. The numbers are those of "
            f"`{command} --json`, kept in {rel}."))
        figures = [f for f in (reward_figure(doc), diversity_figure(doc)) if f is not None]
        section.add(*figures)
        if not doc["reward_models"]:
            section.add(Paragraph("Note: the evaluation had no --rm, so no reward is shown."))
        for note in doc.get("notes", []):
            section.add(Paragraph(f"Note: {note}"))
    return section if section.blocks else None


SPEC = SectionSpec("policies", "Policies", build)

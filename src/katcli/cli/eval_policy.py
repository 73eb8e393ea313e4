"""`kat eval policy`: flags → config, the pipeline call, and the side-by-side tables (or `--json`).

One Rich table per measure family (quality under each reward model, diversity within a prompt, diversity across
prompts, style), with groups overall, per source and per density quintile. Two policies stand side by side with a
Δ column; more are stacked as rows with a Δ row each. A cell shows the value over its 95% bootstrap interval, so
tables stay within 80 columns. This module knows nothing about how replies are generated or measured.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.options import ForceUpstream, TrustRemoteCode
from katcli.cli.render import print_labelled, run_reported
from katcli.data.schema import SHORT_OF
from katcli.devices import DEVICES
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.workspace import paths as P


def _fmt(x: float | None, *, signed: bool = False, short: bool = False) -> str:
    if x is None:
        return "–"
    a = abs(x)
    digits = 0 if a >= 100 else 1 if a >= 10 else (2 if short else 3)
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _cell(est: dict[str, Any] | None, *, signed: bool = False) -> str:
    if est is None or est.get("value") is None:
        return "–"
    lo, hi = est["ci95"]
    value = _fmt(est["value"], signed=signed)
    if lo is None or hi is None:
        return value
    return f"{value}\n{_fmt(lo, signed=signed, short=True)}…{_fmt(hi, signed=signed, short=True)}"


def _group_label(group: str, n: int) -> str:
    if group.startswith("src:"):
        return f"{SHORT_OF.get(group[4:], group[4:])} ({n})"  # hh, uf, se: spelled out on the Sources: line
    extra = {"Q1": " commonest", "Q5": " rarest"}.get(group, "")
    return f"{group}{extra} ({n})"


SIDE_BY_SIDE_MAX = 2  # policies as columns plus a Δ column fit 80 columns for two policies


def family_tables(data: dict[str, Any]) -> list[Table]:
    """The Rich tables of a `kat.eval.policy/1` result, one per measure family.

    Up to two policies stand side by side as columns with a Δ column (rows: each measure, then its groups); with
    more, the measures are the columns and each group lists one row per policy plus a `Δ <policy>` row, so the
    table still fits 80 columns."""
    from katcli.evaluation.measures import FAMILY_TITLES

    families: dict[str, list[dict[str, Any]]] = {}
    for m in data["measures"]:
        families.setdefault(m["family"], []).append(m)
    tables = []
    for family, measures in families.items():
        if family.startswith("quality/"):
            title = f"Quality under {family.split('/', 1)[1]} (win: vs {data['baseline']})"
        else:
            title = FAMILY_TITLES[family]
        table = Table(title=f"{title}; 95% CI below", title_justify="left")
        if len(data["policies"]) <= SIDE_BY_SIDE_MAX:
            _fill_side_by_side(table, data, measures)
        else:
            _fill_stacked(table, data, measures)
        tables.append(table)
    return tables


def _estimate(data: dict[str, Any], policy: str, key: str, group: str) -> dict[str, Any] | None:
    return data["results"][policy].get(key, {}).get(group)


def _fill_side_by_side(table: Table, data: dict[str, Any], measures: list[dict[str, Any]]) -> None:
    names = [p["name"] for p in data["policies"]]
    base = data["baseline"]
    others = [n for n in names if n != base]
    table.add_column("Measure / group", overflow="fold", max_width=22)
    for name in [base, *others]:
        table.add_column(name, justify="right", no_wrap=True, overflow="ellipsis", max_width=14)
    for name in others:
        table.add_column(f"Δ {name}", justify="right", no_wrap=True, overflow="ellipsis", max_width=14)
    for m in measures:
        table.add_row(f"[bold]{m['label']}[/bold]", *[""] * (len(names) + len(others)))
        for group, n in data["groups"].items():
            cells = [_cell(_estimate(data, name, m["key"], group)) for name in [base, *others]]
            cells += [_cell((_estimate(data, name, m["key"], group) or {}).get("delta"), signed=True) for name in others]
            table.add_row(f"  {_group_label(group, n)}", *cells)
        table.rows[-1].end_section = True


def _fill_stacked(table: Table, data: dict[str, Any], measures: list[dict[str, Any]]) -> None:
    names = [p["name"] for p in data["policies"]]
    table.add_column("Group / policy", overflow="fold", max_width=22)
    for m in measures:
        table.add_column(m["label"], justify="right", no_wrap=True)
    for group, n in data["groups"].items():
        table.add_row(f"[bold]{_group_label(group, n)}[/bold]", *[""] * len(measures))
        for name in names:
            table.add_row(f"  {name}", *[_cell(_estimate(data, name, m["key"], group)) for m in measures])
        for name in names:
            if name != data["baseline"]:
                table.add_row(
                    f"  Δ {name}",
                    *[_cell((_estimate(data, name, m["key"], group) or {}).get("delta"), signed=True) for m in measures],
                )
        table.rows[-1].end_section = True


def policy(
    ctx: typer.Context,
    policies: Annotated[
        list[str],
        typer.Argument(
            metavar="POLICY...",
            help="Run names, looked up first under sft_checkpoints/, dpo_checkpoints/, grpo_checkpoints/ and "
            "models/ (KIND/NAME such as dpo/density when several hold it), then as a checkpoint directory path; "
            "hf:NAME|DIR is a Hugging Face causal LM as it is (e.g. the base model before training).",
            show_default=False,
        ),
    ],
    rm: Annotated[
        list[str] | None,
        typer.Option("--rm", metavar="RUN|DIR|hf:NAME", help="Reward model to score with (repeatable): a run name "
                     "under rm_checkpoints/, a directory path, or hf:NAME|DIR (a Hugging Face sequence classifier "
                     "with num_labels=1, as it is). Prefer one no policy was trained against.",
                     show_default=False, rich_help_panel="Quality"),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", metavar="POLICY", help="Policy the Δ columns and win rates compare against "
                     "(default: the first POLICY).", show_default=False, rich_help_panel="Quality"),
    ] = None,
    prompts: Annotated[int, typer.Option("--prompts", metavar="N", help="Held-out prompts, an equal share from "
                                         "each density quintile.", rich_help_panel="Sampling")] = 200,
    samples: Annotated[int, typer.Option("--samples", metavar="K", help="Replies per prompt per policy.",
                                         rich_help_panel="Sampling")] = 4,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", metavar="N", help="Longest reply, in tokens.",
                                                rich_help_panel="Sampling")] = 128,
    temperature: Annotated[float, typer.Option("--temperature", metavar="T", help="Sampling temperature "
                                               "(0 = greedy).", rich_help_panel="Sampling")] = 1.0,
    top_p: Annotated[
        float | None,
        typer.Option("--top-p", metavar="P", help="Nucleus sampling: keep the smallest set of tokens with "
                     "probability ≥ P (default: off).", show_default=False, rich_help_panel="Sampling"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seeds the prompt draw, every (prompt, sample) and the "
                                      "bootstrap; the held-out split when no policy records one.",
                                      rich_help_panel="Sampling")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", metavar="N", help="Prompts per generation batch.",
                                            rich_help_panel="Sampling")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema kat.eval.policy/1).")]
    = False,
    device: Annotated[str, typer.Option("--device", metavar="|".join(DEVICES), help="Where to run the models.")]
    = "auto",
    threads: Annotated[
        int | None,
        typer.Option("--threads", metavar="N", help="CPU threads for torch (default: torch's choice).",
                     show_default=False),
    ] = None,
    force: ForceUpstream = False,
    trust_remote_code: TrustRemoteCode = False,
) -> None:
    """Compare policies on the same held-out prompts: reward, win rate, diversity and style, with intervals.

    Every policy answers the same prompts (an equal seeded draw per density quintile, Q1 commonest … Q5 rarest)
    with --samples replies each; the replies are kept in eval/policy/<kind>-<name>/generations.jsonl, the
    evaluation (as --json prints it, less timings) beside them in evaluation.json. Each value has a 95% bootstrap
    interval over prompts; Δ is against --baseline on the same prompts (paired).

    Example: kat -w ./exp eval policy sft/uniform dpo/density --rm uniform --prompts 200 --samples 4
    """
    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy

    cfg = EvalPolicyConfig(
        policies=tuple(policies), rms=tuple(rm or ()), baseline=baseline, prompts=prompts, samples=samples,
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, device=device,
        threads=threads, batch_size=batch_size, force=force, trust_remote_code=trust_remote_code,
    )
    state = state_of(ctx)
    data = run_reported(state, as_json, lambda report: run_eval_policy(workspace_of(ctx), cfg, progress=report))
    if data is None:
        return
    p, s = data["prompts"], data["sampling"]
    if p["stratified"]:
        per = p["per_quintile"]
        how = f"{per[0]} per density quintile" if len(set(per)) == 1 else "Q1…Q5: " + "/".join(map(str, per))
    else:
        how = "drawn uniformly"
    state.out.print(f"Prompts: {p['n']:,} held-out ({how})", markup=False)
    state.out.print(
        f"Sampling: {s['samples']} per prompt, temperature {s['temperature']}"
        + (f", top-p {s['top_p']}" if s["top_p"] is not None else "") + f", --seed {s['seed']}",
        markup=False,
    )
    for pol in data["policies"]:
        mark = " (baseline)" if pol["name"] == data["baseline"] else ""
        state.out.print(
            f"  {pol['name']}{mark}: step {pol['step']:,}, {pol['tokens_generated']:,} tokens",
            markup=False,
        )
    state.out.print(
        f"Replies: {P.EVAL_POLICY_DIR}/<kind>-<name>/generations.jsonl (beside: {P.EVAL_POLICY_DOCUMENT})",
        markup=False,
    )
    for t in family_tables(data):
        state.out.print(t)
    found = {g[4:] for g in data["groups"] if g.startswith("src:")}
    legend = [f"{short} = {src}" for src, short in SHORT_OF.items() if src in found]
    if legend:
        state.out.print(f"Sources: {', '.join(legend)}", markup=False)
    print_labelled(state.out, "Note", data["notes"])

"""`kat eval rm`: compare reward models on one held-out set, as a side-by-side Rich table or `--json`.

The table has overall, per-source and per-quintile rows with Wilson 95% intervals; for two models a Δ column with
McNemar's p and, under the table, the overall paired interval. The scoring is `katcli.pipeline.eval_rm`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.options import ScoreBatchSize, ScoreDevice, ScoreThreads, TrustRemoteCode
from katcli.cli.render import print_labelled, run_reported, sampling_label
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.data.schema import SHORT_OF, SOURCES



def _sources(models: list[dict[str, Any]]) -> list[str]:
    """The sources evaluated: the downloadable ones in their usual order (hh, uf, se), then any others sorted."""
    found = {s for m in models for s in m["by_source"]}
    return [s for s in SOURCES if s in found] + sorted(found - set(SOURCES))


def _p_text(p: float) -> str:
    """McNemar's p in at most 5 characters, so a Δ cell stays within 80 columns."""
    if p >= 0.995:
        return "1"
    if p >= 0.01:
        return f"{p:.2f}".lstrip("0")
    return f"{p:.3f}".lstrip("0") if p >= 0.001 else "<.001"


def _delta_cell(paired: dict[str, Any] | None) -> str:
    """Δ = B − A on the same pairs and McNemar's exact p-value (the paired interval is printed under the table)."""
    if paired is None or not paired["n"]:
        return "–"
    p = _p_text(paired["mcnemar_p"])
    return f"{paired['delta']:+.3f} p{'' if p.startswith('<') else '='}{p}"


def _paired_rows(cmp: dict[str, Any], models: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The paired statistics in `_groups`' row order: overall, each source, each density quintile."""
    by_source = [cmp["by_source"].get(s) for s in _sources(models)]
    return [cmp["overall"], *by_source, *(cmp["by_quintile"] or [])]


def _stacked_cell(acc: dict[str, Any] | None) -> str:
    """Accuracy over its Wilson interval (`0.875` / `0.79–0.93`), for tables of more than two models."""
    if acc is None or not acc["n"]:
        return "–"
    lo, hi = acc["ci95"]
    return f"{acc['accuracy']:.3f}\n{lo:.2f}–{hi:.2f}"


def _groups(models: list[dict[str, Any]]) -> list[tuple[str, str, list]]:
    """(label, pair count, per-model accuracy dict) rows: overall, each source (by its short name), each quintile."""
    rows = [("overall", f"{models[0]['overall']['n']:,}", [m["overall"] for m in models])]
    for s in _sources(models):
        accs = [m["by_source"].get(s) for m in models]
        n = next((a["n"] for a in accs if a is not None), 0)
        rows.append((SHORT_OF.get(s, s), f"{n:,}", accs))
    if all(m["by_quintile"] is not None for m in models):
        from katcli.train.metrics import quintile_label

        n = len(models[0]["by_quintile"])
        for q in range(n):
            accs = [m["by_quintile"][q] for m in models]
            rows.append((quintile_label(q, n), f"{accs[0]['n']:,}", accs))
    return rows


def rm(
    ctx: typer.Context,
    checkpoints: Annotated[
        list[str],
        typer.Argument(metavar="CKPT...", help="Run names under rm_checkpoints/ (e.g. uniform density), DPO runs "
                       "(dpo/NAME: a DPO policy is an implicit reward model), checkpoint directories, or hf:NAME|DIR "
                       "(a Hugging Face reward model as it is: a sequence classifier with num_labels=1).",
                       show_default=False),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (schema kat.eval.rm/1).")] = False,
    batch_size: ScoreBatchSize = 32,
    device: ScoreDevice = "auto",
    threads: ScoreThreads = None,
    force: Annotated[
        bool, typer.Option("--force", help="Evaluate even if inputs are modified or stale, or the models were "
                           "trained on other pairs."),
    ] = False,
    trust_remote_code: TrustRemoteCode = False,
) -> None:
    """Compare reward models (and DPO policies) on the same held-out pairs: accuracy overall, per source and quintile.

    Held-out pairs are the prompts each model's training held out (same --seed and --val-ratio required); an
    hf:NAME|DIR reward model is scored as it is on those pairs, in the same columns. Density quintiles run from Q1
    (lowest weight, commonest prompts) to Q5 (highest weight, rarest prompts).

    Example: kat -w ./exp eval rm uniform density
    """
    from katcli.pipeline.eval_rm import run_eval_rm
    from katcli.train.metrics import accuracy_cell

    state = state_of(ctx)
    data = run_reported(state, as_json, lambda report: run_eval_rm(
        workspace_of(ctx), checkpoints, device=device, batch_size=batch_size, threads=threads, force=force,
        trust_remote_code=trust_remote_code, progress=report,
    ))
    if data is None:
        return
    models = data["models"]
    held = data["heldout"]
    state.out.print(
        f"Held-out set: {held['pairs']:,} pairs from {held['prompts']:,} prompts "
        f"(--seed {held['seed']}, --val-ratio {held['val_ratio']})",
        markup=False,
    )
    for m in models:
        if "hf" in m:  # an off-the-shelf reward model: where it came from, not how kat trained it
            src = m["hf"]
            how = f"revision {src['revision']}" if src.get("revision") else src["location"]
            state.out.print(f"  {m['name']}: Hugging Face model as it is ({src['source']}, {how})", markup=False)
            continue
        by = f" by weight set {m['weights']}" if m.get("weights") else ""
        state.out.print(f"  {m['name']}: {sampling_label(m['weighting'])} sampling{by}, step {m['step']:,}, "
                        f"{m['path']}", markup=False)
    table = Table(title="Accuracy (95% Wilson interval)", title_justify="left")
    # Labels are short (sources as hh/uf/se, spelled out below the table), so rows stay whole at 80 columns; only
    # an imported source's long name may fold, and then the numbers keep their room.
    table.add_column("Group", overflow="fold", min_width=len("Q1 commonest"))
    table.add_column("Pairs", justify="right", no_wrap=True)
    # Beyond two models a one-line "0.875 (0.79–0.93)" per model no longer fits 80 columns: each cell then holds
    # the accuracy over its interval, two short lines.
    stacked = len(models) > 2
    for m in models:
        table.add_column(m["name"], no_wrap=not stacked, overflow="fold", justify="right" if stacked else "left")
    two = len(models) == 2
    if two:
        table.add_column("Δ", justify="right", no_wrap=True)
    paired = _paired_rows(data["comparisons"][0], models) if two else []
    for row, (label, n, accs) in enumerate(_groups(models)):
        cells = [_stacked_cell(a) if stacked else accuracy_cell(a) for a in accs]
        if two:
            cells.append(_delta_cell(paired[row] if row < len(paired) else None))
        table.add_row(label, n, *cells)
    state.out.print(table)
    legend = [f"{SHORT_OF[s]} = {s}" for s in _sources(models) if s in SHORT_OF]
    if legend:
        state.out.print(f"Sources: {', '.join(legend)}", markup=False)
    if two:
        lo, hi = data["comparisons"][0]["overall"]["ci95"]
        state.out.print(
            f"Δ = {models[1]['name']} − {models[0]['name']} on the same pairs; overall 95% paired interval "
            f"{lo:+.3f}…{hi:+.3f} (bootstrap over held-out prompts), p from McNemar's exact test; every group's "
            "interval is in --json",
            markup=False,
        )
    print_labelled(state.out, "Note", data["notes"])


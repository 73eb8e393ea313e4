"""`kat pairs download|import`: get preference pairs into `data/pairs_all.jsonl`.

Runs `katcli.pipeline.pairs` with progress bars and renders the per-source summary (rows read, pairs kept, drops
by reason, mean lengths).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from katcli.cli.render import print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.data.schema import SHORT_NAMES


_SEL = "Selection"
# Table labels short enough for an 80-column terminal.
_LABEL = {"hh-rlhf": "hh-rlhf", "ultrafeedback-binarized": "ultrafeedback", "stack-exchange-preferences": "stack-exchange"}


# The short source names of `katcli.data.schema`, as Typer's choice type.
SourceName = Enum("SourceName", {short: short for short in SHORT_NAMES}, type=str)  # type: ignore[misc]


_SRC = "Source"
_DS = "Any dataset"
_OUT = "Output"


def download(
    ctx: typer.Context,
    source: Annotated[
        list[SourceName] | None,
        typer.Option(
            "--source", "-s", metavar="|".join(SHORT_NAMES),
            help="Dataset to use (repeatable): hh = Anthropic/hh-rlhf, uf = UltraFeedback binarized, "
                 "se = Stack Exchange preferences. Default: all three (none when --dataset is given).",
            rich_help_panel=_SEL, show_default=False,
        ),
    ] = None,
    budget: Annotated[
        str,
        typer.Option(metavar="N", help="Total pairs to keep: 200000, 200k or 1.5M.", rich_help_panel=_SEL),
    ] = "200k",
    mix: Annotated[
        str | None,
        typer.Option(
            metavar="hh=W,uf=W,se=W",
            help="Relative weights for splitting the budget (a --dataset by its label); a source that runs short "
                 "passes the rest on. Default: 1 each.",
            rich_help_panel=_SEL, show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed for which rows are taken when the budget is smaller than a source.",
                          rich_help_panel=_SEL),
    ] = 0,
    keep_ties: Annotated[
        bool,
        typer.Option("--keep-ties", help="Keep UltraFeedback rows whose two scores are equal (dropped by default).",
                     rich_help_panel=_SEL),
    ] = False,
    se_pairs_per_question: Annotated[
        int,
        typer.Option("--se-pairs-per-question", metavar="N",
                     help="Stack Exchange pairs per question, widest score gap first.", rich_help_panel=_SEL),
    ] = 1,
    from_dir: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="DIR",
            help="Read a local mirror with the hub's layout instead of the hub (DIR/Anthropic/hh-rlhf/…); "
                 "'sample' uses the small mirror shipped with kat.",
            rich_help_panel=_SRC, show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", "-d", metavar="[LABEL=]NAME_OR_DIR",
            help="Any preference dataset (repeatable): a hub name (org/name) or a directory in the hub's layout "
                 "(parquet, jsonl, json, csv), in TRL's preference format. Its pairs' src and --mix name is LABEL "
                 "(default: the name's last part).",
            rich_help_panel=_DS, show_default=False,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", metavar="NAME", help="The --dataset configuration (subset) to read.",
                     rich_help_panel=_DS, show_default=False),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option("--split", metavar="NAME",
                     help="The --dataset splits to read (repeatable). train…/test… splits keep their side; others "
                          "are split by prompt. Default: train.",
                     rich_help_panel=_DS, show_default=False),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option("--columns", metavar="prompt=COL,chosen=COL,rejected=COL",
                     help="Which --dataset columns hold the prompt and the two replies (prompt= for none: an implicit "
                          "prompt). Default: TRL's names.",
                     rich_help_panel=_DS, show_default=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Recorded in the manifest; pairs have no upstream to check.",
                           rich_help_panel=_OUT),
    ] = False,
) -> None:
    """Download preference pairs from the public datasets, or any dataset, into data/pairs_all.jsonl.

    HH-RLHF conversations are split at the common prefix of the two transcripts; UltraFeedback ties and
    Stack Exchange score ties are dropped; every dropped row is counted by reason. A --dataset in TRL's
    format (prompt/chosen/rejected as text or {role, content} messages, explicit or implicit prompt) is read by
    the same rules, streamed up to its share of the budget. Also writes data/stats.txt. Offline? Use --from DIR
    (a mirror in the hub's layout), --from sample, or --dataset DIR.

    Example: kat -w ./exp pairs download --source hh --source uf --budget 50k --mix hh=2,uf=1
    Example: kat -w ./exp pairs download --dataset trl-lib/ultrafeedback_binarized --split train --split test
    """
    from katcli.pipeline.pairs import DEFAULT_SPLITS, DownloadConfig, run_download

    state = state_of(ctx)
    # None given: the config's default (all three), or none of them beside a --dataset.
    chosen = {"sources": tuple(s.value for s in source)} if source else ({"sources": ()} if dataset else {})
    cfg = DownloadConfig(
        **chosen, budget=budget, mix=mix, from_dir=from_dir, seed=seed, keep_ties=keep_ties,
        se_pairs_per_question=se_pairs_per_question, force=force, datasets=tuple(dataset or ()), config=config,
        splits=tuple(split) if split else DEFAULT_SPLITS, columns=columns,
    )
    cfg.options()  # bad flags are reported before any progress display starts
    with progress(state) as report:
        result = run_download(workspace_of(ctx), cfg, progress=report)
    if state.quiet:
        return
    _render_download(state.out, result.stats)
    state.out.print(f"Wrote {result.path} ({result.pairs:,} pairs) and {result.stats_path}", markup=False)


def _render_download(out: Any, stats: dict[str, Any]) -> None:
    table = Table(
        title=f"Pairs: budget {stats['budget']:,}, mix {stats['mix']}, seed {stats['seed']}",
        title_justify="left", caption_justify="left",
        caption="Chars p/c/r: mean characters of prompt / chosen / rejected; Turns: mean prompt messages",
    )
    for col in ("Source", "Read", "Kept", "Dropped", "Unused", "Chars p/c/r", "Turns"):
        table.add_column(col, justify="left" if col == "Source" else "right", min_width=len(col))
    sources = list(stats["sources"].items())  # canonical order: hh-rlhf, ultrafeedback, stack-exchange
    for name, s in sources:
        chars = f"{s['mean_prompt_chars']:.0f}/{s['mean_chosen_chars']:.0f}/{s['mean_rejected_chars']:.0f}"
        table.add_row(
            _LABEL.get(name, name), f"{s['rows_read']:,}", f"{s['pairs_kept']:,}", f"{s['dropped_total']:,}",
            f"{s['over_budget']:,}", chars, f"{s['mean_prompt_messages']:.1f}",
        )
    out.print(table)
    for name, s in sources:
        if s["dropped"]:
            reasons = ", ".join(f"{k} {v:,}" for k, v in s["dropped"].items())
            out.print(f"  {name} dropped: {reasons}", markup=False)
    print_labelled(out, "Note", stats["notes"])


def import_(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", help="JSONL files (plain, .gz, .bz2 or .xz) in kat's pair schema, the "
                       "legacy {prompt, chosen, rejected} form, or HH-RLHF's {chosen, rejected} transcripts.",
                       show_default=False),
    ],
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Skip bad lines (counted; the first few reported) instead of stopping.",
                     rich_help_panel=_SEL),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Recorded in the manifest; pairs have no upstream to check.",
                           rich_help_panel=_OUT),
    ] = False,
) -> None:
    """Import your own preference pairs (JSONL) into data/pairs_all.jsonl, validating every line.

    Missing id, prefix_id and split are derived. The first bad line stops the import with
    "Error: <reason> (<file>:<line>)" and nothing is written, unless --skip-invalid.

    Example: kat -w ./exp pairs import my_pairs.jsonl hh-rlhf/harmless-base/test.jsonl.gz --skip-invalid
    """
    from katcli.pipeline.pairs import ImportConfig, run_import

    state = state_of(ctx)
    cfg = ImportConfig(files=tuple(files), skip_invalid=skip_invalid, force=force)
    cfg.validate()
    with progress(state) as report:
        result = run_import(workspace_of(ctx), cfg, progress=report)
    stats = result.stats
    if stats["invalid"]:  # said even with --quiet: lines were dropped
        state.err.print(f"Skipped {stats['invalid']:,} invalid line(s); first ones:", markup=False)
        for bad in stats["first_invalid"]:
            state.err.print(f"  {bad['file']}:{bad['line']}: {bad['reason']}", markup=False)
    if state.quiet:
        return
    srcs = ", ".join(f"{k} {v:,}" for k, v in stats["by_src"].items())
    splits = ", ".join(f"{k} {v:,}" for k, v in stats["by_split"].items())
    state.out.print(f"Imported {result.pairs:,} pairs from {stats['lines_read']:,} lines ({srcs}; {splits})",
                    markup=False)
    state.out.print(f"Wrote {result.path} and {result.stats_path}", markup=False)

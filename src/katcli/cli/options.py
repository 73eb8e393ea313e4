"""Options that several commands share, declared once so their flag, help and panel never drift apart."""

from __future__ import annotations

from typing import Annotated

import typer

from katcli.devices import DEVICES
from katcli.cli.config_options import option
from katcli.pipeline.train_config import TrainConfig

ForceUpstream = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Use inputs that are modified or stale (recorded as forced in the manifest).",
        rich_help_panel="Upstream",
    ),
]

OpenPage = Annotated[
    bool, typer.Option("--open", help="Open the page in the default browser.", rich_help_panel="Options")
]

# How reward models are scored: `kat eval rm` and `kat report` (which shows what `kat eval rm` computes).
_SCORING = "Scoring"
ScoreDevice = Annotated[
    str, typer.Option("--device", metavar="|".join(DEVICES), help="Where to run the models.", rich_help_panel=_SCORING)
]
ScoreBatchSize = Annotated[
    int, typer.Option("--batch-size", metavar="N", help="Pairs per forward pass.", rich_help_panel=_SCORING)
]
ScoreThreads = Annotated[
    int | None,
    typer.Option("--threads", metavar="N", help="CPU threads for torch (default: torch's choice).",
                 show_default=False, rich_help_panel=_SCORING),
]

# The training flag as it is, for the commands that load an hf: model to score or evaluate it.
TrustRemoteCode = option(TrainConfig, "trust_remote_code")

"""Options that several commands share, declared once so their flag, help and panel never drift apart."""

from __future__ import annotations

from typing import Annotated

import typer

ForceUpstream = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Use inputs that are modified or stale (recorded as forced in the manifest).",
        rich_help_panel="Upstream",
    ),
]

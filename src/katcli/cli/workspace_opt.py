"""How a command turns the global `--workspace` option into a `Workspace` (one rule for every command)."""

from __future__ import annotations

import typer

from katcli.cli.render import AppState
from katcli.workspace import Workspace, default_root


def state_of(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, AppState) else AppState()


def workspace_of(ctx: typer.Context) -> Workspace:
    state = state_of(ctx)
    return Workspace(default_root() if state.workspace is None else state.workspace)

"""The root `kat` Typer app: global options and the one error boundary; the commands are `cli.commands`'.

The boundary turns `KatError` (and `OSError`: disk full, permissions) into `Error: <message> (<file>:<line>)` +
`Hint: ...` on stderr with exit 1 (an error raised without a hint gets one naming the command's --help), Ctrl-C
into exit 130, and lets Click's usage errors exit 2. Tracebacks appear only with --verbose.
Ctrl-C before the boundary is entered (while this module imports, while help is rendered) is `interrupts`'.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from katcli import __version__
from katcli.cli import commands, interrupts
from katcli.cli.render import AppState, make_console, print_error
from katcli.errors import ConfigError, KatError
from katcli.pipeline.stage import invocation



class KatGroup(TyperGroup):
    """Root group whose `invoke` is kat's single error boundary."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(commands.TOP_LEVEL)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))

    def command_path(self, ctx: click.Context, tokens: list[str]) -> str:
        """`kat train rm` for tokens ["train", "rm", "--lr", "-1"]: the subcommand names, down to a command."""
        path, cmd = ["kat"], self
        for token in tokens:
            sub = cmd.get_command(ctx, token) if isinstance(getattr(cmd, "commands", None), dict) else None
            if sub is None:
                break
            path.append(token)
            cmd = sub
        return " ".join(path)

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        token = invocation.set(shlex.join(["kat", *argv]))
        try:
            return super().main(args=argv, *a, **kw)
        finally:
            invocation.reset(token)

    def invoke(self, ctx: click.Context) -> Any:
        # The tokens after the root's own options; the group clears them before the subcommand runs, and the
        # boundary needs them to name the command in a default hint.
        rest = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        try:
            with interrupts.raising():  # from here Ctrl-C is a KeyboardInterrupt, so stages can clean up
                return super().invoke(ctx)
        except KatError as exc:
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            if state.verbose:
                state.err.print_exception(show_locals=False)
            if exc.hint is None:
                exc.hint = default_hint(exc, self.command_path(ctx, rest))
            print_error(state.err, exc)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # Disk full, permission denied, a vanished file: the user's environment, not a kat bug.
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            if state.verbose:
                state.err.print_exception(show_locals=False)
            where = exc.filename if isinstance(exc.filename, str) else None
            print_error(state.err, KatError(exc.strerror or str(exc), file=where,
                                            hint="nothing was replaced; fix the cause and re-run (--verbose for details)"))
            ctx.exit(1)
        except KeyboardInterrupt:
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            state.err.print(interrupts.MESSAGE, markup=False)
            ctx.exit(130)


def default_hint(exc: KatError, command: str) -> str:
    """The hint for an error raised without one: every error tells the user where to look next."""
    if isinstance(exc, ConfigError):
        return f"`{command} --help` lists each flag with the values it accepts"
    return f"`{command} --help` describes what the command reads; add --verbose for the details of the failure"


app = typer.Typer(
    cls=KatGroup,
    name="kat",
    help="kat — density-aware preference learning: pairs → prefixes → embeddings & density → models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kat {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace", "-w", envvar="KAT_WORKSPACE", metavar="DIR",
            help="Workspace directory (default: the per-user data dir).", show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug detail.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summaries.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print kat's version and exit.")
    ] = False,
) -> None:
    """kat runs a density-aware preference-learning experiment end to end.

    Example: kat -w ./exp pairs download --from sample && kat -w ./exp status
    """
    ctx.obj = AppState(
        workspace=workspace, verbose=verbose, quiet=quiet,
        out=make_console(stderr=False), err=make_console(stderr=True),
    )


commands.register(app)


def main() -> None:
    interrupts.arm()  # the console script enters at `katcli.__main__:main`, which armed this before importing us
    app(prog_name="kat")

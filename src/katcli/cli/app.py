"""The root `kat` Typer app: global options, command registration and the one error boundary.

The boundary turns `KatError` (and `OSError`: disk full, permissions) into `Error: <message> (<file>:<line>)` +
`Hint: ...` on stderr with exit 1 (an error raised without a hint gets one naming the command's --help), Ctrl-C
into exit 130, and lets Click's usage errors exit 2. Tracebacks appear only with --verbose.
Ctrl-C before the boundary is entered (while this module imports, while help is rendered) is `interrupts`'.
Command modules are imported here but must not import torch/datasets/sentence-transformers at module
level, so `kat --help` and `kat status` stay fast.
"""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from katcli import __version__
from katcli.cli import interrupts
from katcli.cli.render import AppState, make_console, print_error
from katcli.errors import ConfigError, KatError
from katcli.pipeline.stage import invocation

# Help lists commands in pipeline order (Typer would put every sub-group after every plain command).
COMMAND_ORDER = ("pairs", "prefixes", "embed", "train", "eval", "import", "viz", "report", "quickstart", "status")


class KatGroup(TyperGroup):
    """Root group whose `invoke` is kat's single error boundary."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
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


def _register() -> None:
    # Imported here, in pipeline order, so the help panels read Data → Models → Inspect → Workspace.
    from katcli.cli import embed as embed_cmd
    from katcli.cli import eval as eval_cmd
    from katcli.cli import import_cmd
    from katcli.cli import pairs as pairs_cmd
    from katcli.cli import prefixes as prefixes_cmd
    from katcli.cli import quickstart as quickstart_cmd
    from katcli.cli import report as report_cmd
    from katcli.cli import status as status_cmd
    from katcli.cli import train as train_cmd
    from katcli.cli import train_rm as train_rm_cmd
    from katcli.cli import train_dpo as train_dpo_cmd
    from katcli.cli import train_grpo as train_grpo_cmd
    from katcli.cli import train_kto as train_kto_cmd
    from katcli.cli import train_ppo as train_ppo_cmd
    from katcli.cli import train_sft as train_sft_cmd
    from katcli.cli import viz as viz_cmd

    app.add_typer(pairs_cmd.app, name="pairs", rich_help_panel="Data")
    app.command("prefixes", rich_help_panel="Data")(prefixes_cmd.prefixes)
    app.command("embed", rich_help_panel="Data")(embed_cmd.embed)
    train_cmd.app.command("rm", rich_help_panel="Reward model")(train_rm_cmd.train_rm)
    train_cmd.app.command("sft", rich_help_panel="Policies")(train_sft_cmd.train_sft)
    train_cmd.app.command("dpo", rich_help_panel="Policies")(train_dpo_cmd.train_dpo)
    train_cmd.app.command("grpo", rich_help_panel="Policies")(train_grpo_cmd.train_grpo)
    train_cmd.app.command("kto", rich_help_panel="Policies")(train_kto_cmd.train_kto)
    train_cmd.app.command("ppo", rich_help_panel="Policies")(train_ppo_cmd.train_ppo)
    app.add_typer(train_cmd.app, name="train", rich_help_panel="Models")
    app.add_typer(eval_cmd.app, name="eval", rich_help_panel="Models")
    app.add_typer(import_cmd.app, name="import", rich_help_panel="Models")
    app.command("viz", rich_help_panel="Inspect")(viz_cmd.viz)
    app.command("report", rich_help_panel="Inspect")(report_cmd.report)
    app.command("quickstart", rich_help_panel="Workspace")(quickstart_cmd.quickstart)
    app.command("status", rich_help_panel="Workspace")(status_cmd.status)


_register()


def main() -> None:
    interrupts.arm()  # the console script enters at `katcli.__main__:main`, which armed this before importing us
    app(prog_name="kat")

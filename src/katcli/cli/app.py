"""The root `kat` Typer app: global options and the one error boundary; the commands are `cli.commands`'.

The boundary turns `KatError` (and `OSError`: disk full, permissions) into `Error: <message> (<file>:<line>)` +
`Hint: ...` on stderr with exit 1 (an error raised without a hint gets one naming the command's --help), Ctrl-C
into exit 130, and lets Click's usage errors exit 2. Tracebacks appear only with --verbose.
Ctrl-C before the boundary is entered (while this module imports, while help is rendered) is `interrupts`'.
"""

from __future__ import annotations

import errno
import shlex
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from katcli import __version__
from katcli.cli import commands, interrupts
from katcli.cli.render import QUICKSTART_STEP_INTERRUPT, AppState, human_size, make_console, print_error
from katcli.errors import ConfigError, InterruptedRun, KatError, raise_if_interrupted
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
        _bound_ints(self)
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
        sys.unraisablehook = _quiet_interrupts
        try:
            with interrupts.raising():  # from here Ctrl-C is a KeyboardInterrupt, so stages can clean up
                result = super().invoke(ctx)
                raise_if_interrupted()  # a Ctrl-C that something swallowed on the way is still an interrupt
                return result
        except InterruptedRun as exc:  # Ctrl-C mid-run: one line saying where it stopped and how to continue
            sink = QUICKSTART_STEP_INTERRUPT.get()
            if sink is not None:  # quickstart says it, naming its step
                sink.append(exc.message)
                ctx.exit(exc.exit_code)
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            state.err.print(exc.message, markup=False)
            ctx.exit(exc.exit_code)
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
            message = exc.strerror or str(exc)
            if exc.errno == errno.ENOSPC:  # name the file and how much room is left, so the fix is obvious
                message = f"{message} while writing {where or 'an output'}{_free_space(where)}"
            print_error(state.err, KatError(message, file=None if exc.errno == errno.ENOSPC else where,
                                            hint="nothing was replaced; fix the cause and re-run (--verbose for details)"))
            ctx.exit(1)
        except MemoryError as exc:  # an allocation no size check foresaw: still an Error, never a traceback
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            if state.verbose:
                state.err.print_exception(show_locals=False)
            detail = str(exc).split("\n")[0]
            print_error(state.err, KatError(
                "out of memory" + (f": {detail}" if detail else ""),
                hint=f"lower the sizes of `{self.command_path(ctx, rest)}` (batch, micro-batch, length flags); "
                "nothing was recorded"))
            ctx.exit(1)
        except KeyboardInterrupt:
            sink = QUICKSTART_STEP_INTERRUPT.get()
            if sink is not None:
                sink.append("Interrupted; that step wrote nothing")
                ctx.exit(130)
            state = ctx.obj if isinstance(ctx.obj, AppState) else AppState()
            state.err.print(interrupts.MESSAGE, markup=False)
            ctx.exit(130)


_default_unraisable = sys.unraisablehook


def _quiet_interrupts(unraisable: Any) -> None:
    """Python's "Exception ignored in …" for a Ctrl-C that landed in a finalizer: not printed, since kat remembers
    that Ctrl-C and raises it again at the next safe point (one line, exit 130); anything else as Python would."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    _default_unraisable(unraisable)


def _free_space(path: str | None) -> str:
    import shutil
    from pathlib import Path

    probe = Path(path).parent if path else Path.cwd()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return ""
    return f" ({human_size(free)} free there)"


INT64_MAX = 2**63 - 1
_BOUNDED: dict[type, type] = {}


def _bounded(kind: type) -> type:
    """A subclass of an integer parameter type whose values must fit int64 (an `Error:` naming the flag, exit 1)."""
    if kind not in _BOUNDED:
        def convert(self: Any, value: Any, param: Any, ctx: Any) -> Any:
            out = kind.convert(self, value, param, ctx)
            if isinstance(out, int) and abs(out) > INT64_MAX:
                flag = max(getattr(param, "opts", None) or [str(value)], key=len)
                raise ConfigError(f"{flag} {out} is beyond what kat can count (at most 2^63 − 1 = {INT64_MAX})",
                                  hint=f"pass a smaller {flag}")
            return out

        _BOUNDED[kind] = type(f"Bounded{kind.__name__}", (kind,), {"convert": convert})
    return _BOUNDED[kind]


def _bound_ints(group: Any) -> None:
    """Every integer option accepts at most int64's magnitude: a larger count is refused while the command line is
    parsed, before any work, never accepted to overflow or train "forever" later."""
    for cmd in group.commands.values():
        if hasattr(cmd, "commands"):
            _bound_ints(cmd)
            continue
        for param in cmd.params:
            kind = type(param.type)
            if kind.__name__ in ("IntParamType", "IntRange"):
                param.type.__class__ = _bounded(kind)


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

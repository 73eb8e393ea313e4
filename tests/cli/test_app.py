"""The root app: --help without heavy imports, --version, the error boundary and its exit codes."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from katcli import __version__
from katcli.cli.app import KatGroup
from katcli.errors import ConfigError, KatError

HEAVY = ("torch", "datasets", "sentence_transformers", "hnswlib", "transformers", "rustbpe", "tiktoken")


def _imported_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from katcli.cli.app import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='kat')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY="))
    return {m for m in line[len("HEAVY="):].split(",") if m}


def test_help_and_status_import_no_heavy_library(tmp_path):
    assert _imported_after(["--help"]) == set()
    assert _imported_after(["-w", str(tmp_path / "ws"), "status"]) == set()


def _command_paths() -> list[tuple[str, ...]]:
    """Every registered command and group below the root, as argv paths (("train", "rm"), ...)."""
    from katcli.cli.app import app

    def walk(cmd, path):
        yield path
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


def test_help_lists_every_registered_command(kat):
    from katcli.cli.app import app

    result = kat("--help", workspace=None)
    assert result.exit_code == 0
    top = typer.main.get_command(app).commands
    assert len(top) >= 9  # pairs … status: the walk sees the real tree
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("│ ")]
    listed = {row[1] for row in rows if len(row) > 2}
    assert set(top) <= listed, f"missing from kat --help: {sorted(set(top) - listed)}"
    for name, group in top.items():  # and each group's help lists its own commands (pairs download, train rm, …)
        if getattr(group, "commands", None):
            sub = kat(name, "--help", workspace=None).stdout
            subs = {row[1] for row in (ln.split() for ln in sub.splitlines() if ln.startswith("│ ")) if len(row) > 2}
            assert set(group.commands) <= subs, f"missing from kat {name} --help: {sorted(set(group.commands) - subs)}"


def test_no_help_text_labels_flags_as_bool(kat):
    # Typer 0.29 printed `<bool>` after every flag; the pin in pyproject/constraints keeps help readable.
    paths = _command_paths()
    assert ("train", "rm") in paths and ("eval", "rm") in paths and ("pairs", "import") in paths
    for path in paths:
        result = kat(*path, "--help", workspace=None)
        assert result.exit_code == 0, path
        assert "<bool>" not in result.stdout, f"kat {' '.join(path)} --help shows <bool>"
        assert "Usage: kat" in result.stdout


def test_version(kat):
    result = kat("--version", workspace=None)
    assert result.exit_code == 0
    assert result.stdout == f"kat {__version__}\n"


def test_unknown_command_is_a_usage_error(kat):
    result = kat("frobnicate")
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr


def _boundary_app(exc: BaseException) -> typer.Typer:
    app = typer.Typer(cls=KatGroup, pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose")) -> None:
        from katcli.cli.render import AppState

        ctx.obj = AppState(verbose=verbose)

    @app.command()
    def boom() -> None:
        raise exc

    return app


def test_kat_error_is_one_message_with_hint_and_exit_1():
    exc = KatError("broken JSON: Expecting value", file="pairs.jsonl", line=3, hint="fix the line or --skip-invalid")
    result = CliRunner().invoke(_boundary_app(exc), ["boom"])
    assert result.exit_code == 1
    assert result.stderr == "Error: broken JSON: Expecting value (pairs.jsonl:3)\nHint: fix the line or --skip-invalid\n"
    assert result.stdout == ""


def test_verbose_adds_the_traceback():
    result = CliRunner().invoke(_boundary_app(KatError("bad")), ["--verbose", "boom"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-2:] == [
        "Error: bad",
        "Hint: `kat boom --help` describes what the command reads; add --verbose for the details of the failure",
    ]


def test_an_error_raised_without_a_hint_gets_one_naming_the_command():
    result = CliRunner().invoke(_boundary_app(ConfigError("--n must be at least 1 (got 0)")), ["boom"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: --n must be at least 1 (got 0)",
        "Hint: `kat boom --help` lists each flag with the values it accepts",
    ]


def test_ctrl_c_exits_130():
    result = CliRunner().invoke(_boundary_app(KeyboardInterrupt()), ["boom"])
    assert result.exit_code == 130
    assert result.stderr == "Interrupted: stopped before finishing; nothing was written.\n"


def test_python_dash_m_matches_console_script():
    out = subprocess.run([sys.executable, "-m", "katcli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == f"kat {__version__}\n"

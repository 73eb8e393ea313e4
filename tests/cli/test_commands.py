"""Commands are registered in one place: `katcli.cli.commands`' table is the whole `kat` tree."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

import katcli.cli
from katcli.cli import commands


def _paths(cmd, prefix=()):
    for name, sub in getattr(cmd, "commands", {}).items():
        if getattr(sub, "commands", None):
            yield from _paths(sub, (*prefix, name))
        else:
            yield " ".join((*prefix, name))


def test_the_table_is_the_command_tree():
    from katcli.cli.app import app

    tree = list(_paths(typer.main.get_command(app)))
    table = [path for path, _, _ in commands.COMMANDS]
    assert sorted(tree) == sorted(table) and len(table) == len(set(table))
    assert set(commands.GROUPS) == {p.split()[0] for p in table if " " in p}


def test_no_other_module_registers_a_command():
    cli_dir = Path(katcli.cli.__file__).parent
    offenders = []
    for path in sorted(cli_dir.glob("*.py")):
        if path.name in ("app.py", "commands.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("command", "add_typer", "Typer", "callback"):
                    offenders.append(f"{path.name}:{node.lineno} .{node.func.attr}(")
    assert offenders == []

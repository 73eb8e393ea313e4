"""Package docstrings stay true: every module a package's opening docstring names in backticks exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import katcli

ROOT = Path(katcli.__file__).parent
PACKAGES = sorted(p.parent for p in ROOT.rglob("__init__.py"))
_NAME = re.compile(r"`([A-Za-z_][\w.]*)/?`")


def _named_modules(package: Path) -> list[str]:
    """The backticked names that read as modules: a bare lowercase name, or a dotted `katcli.…` path."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    names = [m.group(1) for m in _NAME.finditer(doc)]
    return [n for n in names if n.startswith("katcli.") or re.fullmatch(r"[a-z_][a-z0-9_]*", n)]


def _exists(package: Path, name: str) -> bool:
    if name.startswith("katcli."):
        parts = name.split(".")[1:]
        base = ROOT
    else:
        parts, base = [name], package
    for i in range(len(parts), 0, -1):  # katcli.cli.commands.register: the longest prefix that is a module
        path = base.joinpath(*parts[:i])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_package_docstring_names_only_modules_that_exist(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"{package.name}/__init__.py has no docstring"
    missing = [n for n in _named_modules(package) if not _exists(package, n)]
    assert missing == [], f"{package.relative_to(ROOT.parent)}/__init__.py names no such module: {missing}"


def test_the_check_catches_a_stale_name(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Modules: `real` and `trainer`."""\n')
    (pkg / "real.py").write_text("")
    assert [n for n in _named_modules(pkg) if not _exists(pkg, n)] == ["trainer"]

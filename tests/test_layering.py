"""Import layering: cli → pipeline → domain (data, density, evaluation, model, train, viz, report) → workspace.

A module may import katcli modules of its own layer or of layers to its right; `katcli.errors` and
`katcli.progress` are leaves everyone may use. Domain packages never import Typer or Rich.
Checked statically (AST), including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "katcli"
RANK = {
    "cli": 0, "pipeline": 1, "data": 2, "density": 2, "evaluation": 2, "model": 2, "train": 2, "viz": 2, "report": 2,
    "workspace": 3,
}
LEAVES = {"errors", "progress", "devices", "__init__"}
# Domain packages may use each other only in these directions (train builds on model, data and density).
DOMAIN_ALLOWED = {
    "train": {"model", "data", "density"},
    "evaluation": {"model", "train", "density"},  # samples with model's Engine, scores with train's reward-model code
    "viz": {"density"},  # viz reads what density wrote, through its one reader
    "report": {"density", "viz", "train"},  # reads their files with their loaders; draws what they computed
    "density": set(),
    "model": set(),
    "data": set(),
}
UI = {"typer", "rich", "click"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "katcli" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if own in ("__main__",):
            continue
        for lineno, mod in _imports(path):
            where = f"{rel}:{lineno} imports {mod}"
            top = mod.split(".")[0]
            if own in RANK and RANK[own] >= 2 and top in UI:
                bad.append(f"{where} (domain and workspace code never import UI libraries)")
            target = _layer(mod)
            if target is None or target in LEAVES or target == own:
                continue
            if own in LEAVES:
                bad.append(f"{where} (leaf modules import nothing from katcli)")
                continue
            if target not in RANK:
                bad.append(f"{where} (unknown katcli package)")
                continue
            if RANK[target] < RANK[own]:
                bad.append(f"{where} (imports upward)")
            elif RANK[target] == RANK[own] == 2 and target not in DOMAIN_ALLOWED[own]:
                bad.append(f"{where} (domain {own} may not import domain {target})")
    return bad


def test_layers_point_one_way():
    assert _violations() == []


def test_checker_catches_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "katcli"
    (fake / "workspace").mkdir(parents=True)
    (fake / "workspace" / "bad.py").write_text("from katcli.pipeline.stage import StageRun\nimport rich\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    assert _violations() == [
        "workspace/bad.py:1 imports katcli.pipeline.stage (imports upward)",
        "workspace/bad.py:2 imports rich (domain and workspace code never import UI libraries)",
    ]

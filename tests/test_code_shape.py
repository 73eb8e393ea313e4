"""The shape of the source, checked statically (AST): no import cycle between katcli's modules, counting imports
inside functions too (a lazy import only hides a cycle), and no function in `pipeline/`, `train/` or `evaluation/`
longer than 100 lines, its signature not counted (so a long Typer-style parameter list is no finding)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "katcli"
LONG_IN = ("pipeline", "train", "evaluation")
MAX_LINES = 100


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            if (t.id if isinstance(t, ast.Name) else getattr(t, "attr", "")) == "TYPE_CHECKING":
                for sub in node.body:
                    skip.update(id(n) for n in ast.walk(sub))
    return skip


def _imports(tree: ast.AST, mod: str, is_pkg: bool, known: set[str]) -> set[str]:
    """The katcli modules `mod` imports, anywhere in it (module level or inside functions)."""
    skip = _type_checking_nodes(tree)
    base = mod if is_pkg else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                if f"{target}.{a.name}" in known:
                    out.add(f"{target}.{a.name}")
                elif target in known:
                    out.add(target)
    out.discard(mod)
    return out


def _graph() -> tuple[dict[str, set[str]], dict[str, tuple[Path, ast.AST]]]:
    files = sorted((ROOT / PACKAGE).rglob("*.py"))
    known = {_module(f) for f in files}
    graph, trees = {}, {}
    for f in files:
        m = _module(f)
        tree = ast.parse(f.read_text(encoding="utf-8"))
        trees[m] = (f, tree)
        # a package's __init__ importing its own submodules is how it re-exports them, not a cycle of design
        graph[m] = {t for t in _imports(tree, m, f.name == "__init__.py", known)
                    if not (f.name == "__init__.py" and t.startswith(m + "."))}
    return graph, trees


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    comps: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_katcli():
    graph, _ = _graph()
    assert _cycles(graph) == []


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement of the body (the signature and decorators not counted) to the end."""
    return node.end_lineno - node.body[0].lineno + 1


def test_body_lines_leave_out_the_signature():
    fn = ast.parse("def f(\n    a,\n    b,\n):\n    x = 1\n    return x\n").body[0]
    assert _body_lines(fn) == 2


def test_no_long_functions_in_pipeline_train_evaluation():
    _, trees = _graph()
    long = []
    for m, (f, tree) in trees.items():
        if not any(m == f"{PACKAGE}.{s}" or m.startswith(f"{PACKAGE}.{s}.") for s in LONG_IN):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_LINES:
                long.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    assert long == []

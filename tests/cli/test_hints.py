"""Every hint kat can print names real commands and flags and reads as a sentence, never a template.

A static walk over the source: every `hint=` given as a literal (f-strings included: their `{…}` parts are
unknown words), and the registry's table of commands that `kat status` and the "run X first" hints quote. A
backticked `kat …` must resolve to a command of the app with options it has; a backticked `--flag` must be an
option of some command; a hint may not contain a placeholder phrase or an unfilled `{…}`.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import typer.main

from katcli.cli.app import app
from katcli.pipeline import registry

SRC = Path(__file__).resolve().parents[2] / "src" / "katcli"
HOLE = "\x00"  # an f-string's `{…}`: a value only known at run time
PLACEHOLDERS = ("the stage that writes it", "TODO", "XXX", "FIXME", "<what>")
UNFILLED = re.compile(r"\{[A-Za-z_][\w.]*(![rsa])?(:[^}]*)?\}")  # `{name}`: a template that was never formatted
GLOBAL_WITH_VALUE = {"-w", "--workspace"}
GLOBAL_FLAGS = {"-q", "--quiet", "-v", "--verbose", "--version", "-h", "--help"}
# Programs other than kat that a hint may tell the user to run.
OTHER_PROGRAMS = {"cp", "rm", "mv", "ln", "torchrun", "pip", "python", "python3", "nvidia-smi", "huggingface-cli",
                  "hf", "export", "ls", "chmod", "df", "du", "cat", "gzip", "git"}


def _texts(node: ast.AST) -> list[str]:
    """The literal text(s) of a hint expression, holes for its `{…}`; [] when it is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)]
    if isinstance(node, ast.IfExp):
        return _texts(node.body) + _texts(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _texts(node.left) or [HOLE], _texts(node.right) or [HOLE]
        return [a + b for a in left for b in right]
    return []


def literal_hints() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "hint":
                        where = f"{path.relative_to(SRC)}:{node.lineno}"
                        found += [(where, t) for t in _texts(kw.value)]
    return found


def _click_root():
    return typer.main.get_command(app)


def _all_options() -> set[str]:
    opts: set[str] = set()

    def walk(cmd):
        for p in getattr(cmd, "params", []):
            opts.update(getattr(p, "opts", []))
            opts.update(getattr(p, "secondary_opts", []))
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(_click_root())
    return opts


def command_problem(span: str) -> str | None:
    """Why the backticked `kat …` span is not a real command line, or None."""
    try:
        words = shlex.split(span.replace(HOLE, "X").replace("…", " "))
    except ValueError as exc:
        return f"does not parse: {exc}"
    if not words or words[0] != "kat":
        return "does not start with kat"
    cmd, i = _click_root(), 1
    while i < len(words) and words[i].startswith("-"):  # global options
        if words[i] in GLOBAL_WITH_VALUE:
            i += 2
        elif words[i] in GLOBAL_FLAGS or words[i].startswith(("-w", "--workspace=")):
            i += 1
        else:
            return f"{words[i]} is not a global option"
    while hasattr(cmd, "commands") and i < len(words):
        if HOLE in span.split()[min(i, len(span.split()) - 1)] and words[i] == "X":
            return None  # a command named at run time: checked by the registry test
        sub = cmd.commands.get(words[i])
        if sub is None:
            return f"{words[i]!r} is not a command of `{' '.join(words[:i])}`"
        cmd, i = sub, i + 1
    if hasattr(cmd, "commands"):
        return None if i == len(words) else f"`{span}` names a command group"  # `kat train` alone lists them
    options = {o for p in cmd.params for o in (*getattr(p, "opts", []), *getattr(p, "secondary_opts", []))}
    options |= {"--help", "-h"}
    for w in words[i:]:
        if w.startswith("--") and w.split("=")[0] not in options:
            return f"{w.split('=')[0]} is not an option of `{' '.join(words[:i])}`"
    return None


def hint_problems(hint: str) -> list[str]:
    problems = [f"holds the placeholder {p!r}" for p in PLACEHOLDERS if p in hint]
    problems += [f"holds the unfilled {m.group(0)!r}" for m in UNFILLED.finditer(hint)]
    if not hint.strip() or hint.strip() == HOLE:
        return problems
    if not (hint[0].isalnum() or hint[0] in "`(-" or hint[0] == HOLE):  # a word, a command, a flag
        problems.append(f"does not start a sentence: {hint[:20]!r}")
    for span in re.findall(r"`([^`]*)`", hint):
        first = span.split(" ", 1)[0]
        if first == "kat":
            why = command_problem(span)
            if why:
                problems.append(f"`{span}`: {why}")
        elif first.startswith("--") and HOLE not in first:
            if first.split("=")[0] not in _all_options():
                problems.append(f"`{span}`: {first} is no option of any kat command")
        elif first.startswith(HOLE) or first in OTHER_PROGRAMS or not span.strip():
            continue
    return problems


def test_the_walk_finds_the_hints():
    hints = literal_hints()
    assert len(hints) > 100  # every module's hints, not a handful
    assert any("`kat pairs download`" in h for _, h in hints)


def test_every_literal_hint_is_a_real_command_or_sentence():
    bad = [f"{where}: {problem} in {hint!r}" for where, hint in literal_hints() for problem in hint_problems(hint)]
    assert bad == []


def test_every_command_in_the_registry_table_is_real():
    bad = []
    for spec in registry.STAGES:
        for command in (spec.command.replace("{name}", "NAME"), *spec.also, spec.command_for(None),
                        spec.command_for("x")):
            why = command_problem(command)
            if why:
                bad.append(f"{spec.name}: `{command}`: {why}")
    assert bad == []


@pytest.mark.parametrize("path", ["tiny_llama/config.json", "notes.txt", "sft_checkpoints/x/model_000001.pt",
                                  "data/pairs_all.jsonl", "eval/policy/a/generations.jsonl"])
def test_the_hint_for_any_unrecorded_path_is_real(tmp_path, path):
    """The "run X first" hints, built at run time from the path, for paths a stage writes and paths none does."""
    from katcli.pipeline.upstream import load_judge
    from katcli.workspace import Workspace

    problem = load_judge(Workspace(tmp_path)).check_input(path)
    assert hint_problems(problem.hint) == [], problem.hint


def test_the_checker_catches_what_it_must():
    assert hint_problems("run `the stage that writes it` to produce it")  # the template hint
    assert hint_problems("run `kat train sftt` first")
    assert hint_problems("pass `kat train sft --no-such-flag`")
    assert hint_problems("pass `--no-such-flag`")
    assert hint_problems("re-run {stage}")
    assert hint_problems("run `kat train sft --name h --resume` to continue") == []

"""Every `kat` command, registered here and nowhere else: one table of paths, functions and help panels.

Command modules define plain functions; `register(app)` adds them, and the four groups, to the root app. The
table's order is the help's: Data → Models → Inspect → Workspace, and within a group its commands' order.
Command modules import no heavy library at module level, so `kat --help` and `kat status` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from katcli.cli import embed, eval_policy, export, import_cmd, pairs, prefixes, quickstart, report, status, train, viz
from katcli.cli import eval as eval_cmd
from katcli.cli import train_dpo, train_grpo, train_kto, train_ppo, train_rm, train_sft

# Groups: name → (help, panel in `kat --help`).
GROUPS = {
    "pairs": ("Get preference pairs: download HH-RLHF / UltraFeedback / Stack Exchange, or import your own JSONL.",
              "Data"),
    "train": ("Train the tokenizer and the models.", "Models"),
    "eval": ("Evaluate trained models on held-out pairs.", "Models"),
    "import": ("Import models trained elsewhere (nanochat) into the workspace.", "Models"),
}

# (path, function, help panel: within its group for a subcommand, in `kat --help` for a top-level command).
COMMANDS: tuple[tuple[str, Callable[..., Any], str | None], ...] = (
    ("pairs download", pairs.download, None),
    ("pairs import", pairs.import_, None),
    ("prefixes", prefixes.prefixes, "Data"),
    ("embed", embed.embed, "Data"),
    ("train tokenizer", train.tokenizer, "Tokenizer"),
    ("train rm", train_rm.train_rm, "Reward model"),
    ("train sft", train_sft.train_sft, "Policies"),
    ("train dpo", train_dpo.train_dpo, "Policies"),
    ("train grpo", train_grpo.train_grpo, "Policies"),
    ("train kto", train_kto.train_kto, "Policies"),
    ("train ppo", train_ppo.train_ppo, "Policies"),
    ("eval rm", eval_cmd.rm, "Reward models"),
    ("eval policy", eval_policy.policy, "Policies"),
    ("import nanochat", import_cmd.nanochat, "Sources"),
    ("export", export.export, "Models"),
    ("viz", viz.viz, "Inspect"),
    ("report", report.report, "Inspect"),
    ("quickstart", quickstart.quickstart, "Workspace"),
    ("status", status.status, "Workspace"),
)

# Top-level names in help order (Typer would list every group after every plain command).
TOP_LEVEL = tuple(dict.fromkeys(path.split()[0] for path, _, _ in COMMANDS))


def _add(target: typer.Typer, name: str, fn: Callable[..., Any], panel: str | None) -> None:
    if panel is None:
        target.command(name)(fn)
    else:
        target.command(name, rich_help_panel=panel)(fn)


def group(name: str) -> typer.Typer:
    """A fresh `kat NAME` group with its commands (tests mount one group under a bare root)."""
    app = typer.Typer(name=name, help=GROUPS[name][0], no_args_is_help=True, rich_markup_mode="rich")
    for path, fn, panel in COMMANDS:
        parent, _, sub = path.partition(" ")
        if parent == name and sub:
            _add(app, sub, fn, panel)
    return app


def register(app: typer.Typer) -> None:
    """Add every command and group to the root `app`, in help order."""
    for name in TOP_LEVEL:
        if name in GROUPS:
            app.add_typer(group(name), name=name, rich_help_panel=GROUPS[name][1])
        else:
            _, fn, panel = next(c for c in COMMANDS if c[0] == name)
            _add(app, name, fn, panel)

"""`kat quickstart`: run the quickstart plan, each step through the real CLI, showing the command it runs.

Running steps as commands (not as pipeline calls) means the manifest records what a user would type, each
step's own progress bars and summaries appear, and a failure stops with that step's own error message.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import click
import typer

from katcli.cli.options import ReportTo
from katcli.cli.render import QUICKSTART_STEP_INTERRUPT
from katcli.cli.workspace_opt import state_of, workspace_of


def quickstart(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", "-w", metavar="DIR",
                     help="Workspace to fill (same as the global --workspace).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed for every step.")] = 0,
    rm_steps: Annotated[int, typer.Option("--rm-steps", metavar="N", help="Steps per tiny reward model.")] = 60,
    policy_steps: Annotated[
        int, typer.Option("--policy-steps", metavar="N", help="Steps per tiny policy (SFT, DPO, GRPO).")
    ] = 60,
    seeds: Annotated[
        int, typer.Option("--seeds", metavar="N", help="Train every arm N times (seeds --seed … --seed + N − 1, "
                          "runs NAME-s<seed>): the evaluations report each replicate and the across-seed estimate.")
    ] = 1,
    report_to: ReportTo = None,
) -> None:
    """Run the whole experiment on the built-in sample in a few minutes on a CPU.

    pairs → prefixes → embed → tokenizer → uniform and density-aware reward models, SFT, DPO and GRPO policies →
    eval rm (reward models and DPO policies side by side) → eval policy → viz → report → status. Tiny models: a smoke test of every stage, not a result. Each step is
    printed as the kat command it runs, so you can re-run or vary any of them.

    Example: kat quickstart --workspace ./kat-demo
    """
    from katcli.pipeline import quickstart as qs

    state = state_of(ctx)
    if workspace is not None:
        state.workspace = workspace
    ws = workspace_of(ctx)
    plan = qs.quickstart_plan(qs.QuickstartConfig(seed=seed, rm_steps=rm_steps, policy_steps=policy_steps,
                                                     seeds=seeds, report_to=tuple(report_to or ())))
    qs.check_workspace(ws)
    global_opts = ["-w", str(ws.root)] + (["-q"] if state.quiet else []) + (["-v"] if state.verbose else [])
    root: click.Command = ctx.find_root().command
    for i, step in enumerate(plan, 1):
        argv = [*global_opts, *step.argv]
        if not state.quiet:
            state.out.rule(f"[bold]{i}/{len(plan)} · {step.title}", align="left")
            state.out.print(f"$ {shlex.join(['kat', *argv])}", markup=False, style="dim")
        interrupted: list[str] = []
        token = QUICKSTART_STEP_INTERRUPT.set(interrupted)
        try:
            code = root.main(args=argv, prog_name="kat", standalone_mode=False)
        finally:
            QUICKSTART_STEP_INTERRUPT.reset(token)
        if interrupted:  # one line: where the step stopped (a training step names its checkpoint), what is recorded
            done = f"steps 1–{i - 1} are recorded" if i > 1 else "nothing was written"
            state.err.print(f"{interrupted[0]} (quickstart step {i}/{len(plan)}, {step.title}; {done}).",
                            markup=False)
            raise typer.Exit(130)
        if code:  # the step printed its own error
            state.err.print(f"quickstart stopped at step {i}/{len(plan)} ({step.title}).", markup=False)
            raise typer.Exit(int(code))
    if not state.quiet:
        state.out.print(
            f"Done: the whole experiment ran in {ws.root} (tiny models: a smoke test of every stage, not a result). "
            f"The report: {ws.abs('reports/report.html')}; the prompt space: {ws.abs('viz/embeddings_3d.html')}. "
            "Real experiments start from a pretrained model (`kat import nanochat`).",
            markup=False,
        )

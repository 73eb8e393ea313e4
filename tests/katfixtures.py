"""Test helpers importable from any test module (a uniquely named module, unlike `conftest`)."""

from __future__ import annotations

from pathlib import Path


def record_stage(ws_root: Path, stage: str, outputs: dict[str, str], inputs: tuple[str, ...] = (),
                 name: str | None = None, force: bool = False, rows: int | None = None,
                 command: str | None = None) -> None:
    """Run a fake stage through the real StageRun protocol: check `inputs`, write `outputs` (text).

    `command` is the command line the run records (default `kat test-<stage>`, which no stage runs as).
    """
    from katcli.pipeline.stage import StageRun
    from katcli.workspace import Workspace

    with StageRun(Workspace(ws_root), stage, name=name, params={"fake": True}, force=force,
                  command=command or f"kat test-{stage}") as run:
        for rel in inputs:
            run.input(rel)
        for rel, text in outputs.items():
            run.output(rel).write_text(text, encoding="utf-8")
            run.describe(rel, rows=rows if rows is not None else text.count("\n"))


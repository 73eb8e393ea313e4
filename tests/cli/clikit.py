"""Test kit for the CLI tests of `kat embed`: the embed command behind the root's error boundary, a prefixes
stage recorded through the real StageRun, and readers for what embed writes.

Not a conftest.py (it would shadow the root one); test modules import what they need from here, fixtures included.
"""

from __future__ import annotations

import json
from pathlib import Path

import densitykit as kit
import numpy as np
import pytest
import typer
from katfixtures import record_stage
from typer.testing import CliRunner

from katcli.workspace import paths as P


def embed_app() -> typer.Typer:
    """The root app's callback and error boundary with `embed` registered (as cli/app.py does)."""
    from katcli.cli.app import KatGroup, root
    from katcli.cli.embed import embed

    app = typer.Typer(cls=KatGroup, pretty_exceptions_enable=False)
    app.callback()(root)
    app.command("embed")(embed)
    return app


@pytest.fixture
def kat_embed(ws_dir):
    runner = CliRunner()
    app = embed_app()

    def run(*args: str):
        return runner.invoke(app, ["-w", str(ws_dir), "embed", *map(str, args)], catch_exceptions=False)

    return run


def err(result) -> str:
    """stderr from the error message on (progress bars drawn before it are not part of the message)."""
    text = result.stderr
    return text[text.index("Error: "):] if "Error: " in text else text


def record_prefixes(ws_dir: Path, prompts: list[str]) -> list[str]:
    """pairs → prefixes recorded through the real StageRun, the prefixes file in its real schema."""
    tmp = ws_dir.parent / "prefixes_src.jsonl"
    ids = kit.write_prefixes(tmp, prompts)
    record_stage(ws_dir, "pairs", {P.PAIRS: "{}\n"})
    record_stage(
        ws_dir,
        "prefixes",
        {P.PREFIXES: tmp.read_text(encoding="utf-8"), P.PREFIX_ID_MAP: "".join(f"x\t{i}\n" for i in ids)},
        inputs=(P.PAIRS,),
    )
    return ids


def read_outputs(ws_dir: Path):
    emb = np.load(ws_dir / P.EMBEDDINGS)
    w = np.load(ws_dir / P.DENSITY_WEIGHTS)
    ids = json.loads((ws_dir / P.EMBED_IDS).read_text(encoding="utf-8"))
    meta = json.loads((ws_dir / P.EMBED_METADATA).read_text(encoding="utf-8"))
    return emb, w, ids, meta

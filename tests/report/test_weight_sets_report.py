"""Several weightings in one workspace, end to end: `kat embed --name sharp --power 2` beside the default, a
density-aware reward model trained with `--weights sharp`, and the report showing each weighting as its own arm."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from reportkit import TINY_RM, kat, markdown_tables
from typer.testing import CliRunner

from katcli.cli.app import app
from katcli.workspace import paths as P

SHARP = "data/embeddings_offline/weights/sharp"


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_sharper_weighting_is_its_own_arm(report_density_ws, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(report_density_ws, root)
    before = {rel: sha(root / rel) for rel in (P.EMBEDDINGS, P.DENSITY_WEIGHTS, P.EMBED_IDS, P.EMBED_METADATA)}
    kat(root, "embed", "--name", "sharp", "--power", "2")
    assert {rel: sha(root / rel) for rel in before} == before  # the default set's bytes unchanged
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.npy")) == [
        P.DENSITY_WEIGHTS, P.EMBEDDINGS, f"{SHARP}/density_weights.npy"]  # two weight sets, one embeddings file

    kat(root, "train", "tokenizer", "--vocab-size", "320")
    kat(root, "train", "rm", "--name", "uniform", *TINY_RM)
    kat(root, "train", "rm", "--name", "density", "--density-aware", *TINY_RM)
    kat(root, "train", "rm", "--name", "sharp", "--density-aware", "--weights", "sharp", *TINY_RM)
    meta = json.loads(sorted((root / P.RM_DIR / "sharp").glob("meta_*.json"))[-1].read_text())
    assert meta["sampling"]["weights"] == "sharp"
    assert meta["sampling"]["weights_sha256"] == sha(root / SHARP / "density_weights.npy")
    assert meta["config"]["weights"] == "sharp"
    default_meta = json.loads(sorted((root / P.RM_DIR / "density").glob("meta_*.json"))[-1].read_text())
    assert "weights" not in default_meta["sampling"] and "weights" not in default_meta["config"]
    assert meta["sampling"]["ess"] < default_meta["sampling"]["ess"]  # power 2: a more uneven draw than power 1
    missing = CliRunner().invoke(app, ["-w", str(root), "train", "rm", "--density-aware", "--weights", "flat",
                                       *TINY_RM])
    assert missing.exit_code == 1
    assert missing.stderr.splitlines()[0] == "Error: --weights flat: no such weight set (sets: default, sharp)"

    kat(root, "report", "--device", "cpu", "--out", "r")
    md = (root / "r" / "report.md").read_text(encoding="utf-8")
    tables = markdown_tables(md)
    sets = next(t for t in tables if t[0][:3] == ["Set", "k", "Power"])
    assert [row[:3] for row in sets[1:]] == [["default", "20", "1.0"], ["sharp", "20", "2.0"]]
    assert "![Density weights: set sharp](density-weights-sharp.png)" in md
    quintiles = next(t for t in tables if t[0][:2] == ["Quintile", "Weight range"])
    assert quintiles[0][3:] == ["uniform", "density", "sharp", "Δ density", "Δ sharp"]
    assert len(quintiles) == 6  # five quintiles, cut once (on the default set) for all three arms
    assert "sharp (per-prompt sampling by weight set sharp, step 6)" in md
    assert "Note: density quintiles are cut on the default weight set, not on sharp" in md

"""The one end-to-end run on CPU: `kat quickstart` on the built-in sample, twice, byte for byte.

It exercises every stage through the real CLI (real MiniLM via the bundled copy, rustbpe tokenizer, two tiny
reward models, SFT policies, both evals, viz, the report) and checks the promise that the same inputs and seed give byte-identical artifacts.
"""

from __future__ import annotations

import json
import re

import pytest

from katcli.workspace import Manifest
from katcli.workspace import paths as P

pytestmark = pytest.mark.slow


def _artifact_hashes(root) -> dict[str, str]:
    m = Manifest.load(root / P.MANIFEST)
    return {o.path: o.sha256 for run in m.runs.values() for o in run.outputs}


def test_quickstart_runs_every_stage_and_is_deterministic(kat, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    result = kat("quickstart", "--workspace", str(first), "--rm-steps", "20", workspace=None)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"$ kat -w {first} pairs download --from sample --seed 0" in out
    assert re.search(r"(\d+)/\1 · Workspace status", out)
    assert "Everything is up to date." in out
    assert f"The report: {first.resolve()}/reports/report.html" in out

    status = json.loads(kat("status", "--json", workspace=first).stdout)
    assert {r["key"]: r["state"] for r in status["stages"]} == {
        "pairs": "ok", "prefixes": "ok", "embed": "ok", "tokenizer": "ok",
        "rm/density": "ok", "rm/uniform": "ok", "sft/density": "ok", "sft/uniform": "ok", "viz": "ok",
        "dpo/uniform": "ok", "dpo/density": "ok", "grpo/uniform": "ok", "grpo/density": "ok", "report": "ok",
        "eval-policy/sft-uniform": "ok", "eval-policy/dpo-uniform": "ok", "eval-policy/dpo-density": "ok",
        "eval-policy/grpo-uniform": "ok", "eval-policy/grpo-density": "ok",
        "ppo/uniform": "ok", "ppo/density": "ok", "eval-policy/ppo-uniform": "ok", "eval-policy/ppo-density": "ok",
    }
    assert status["next_command"] is None
    manifest = Manifest.load(first / P.MANIFEST)
    assert manifest.runs["pairs"].command == f"kat -w {first} pairs download --from sample --seed 0"
    assert manifest.runs["dpo/uniform"].stats["ref_cache"] == "computed"
    assert manifest.runs["dpo/density"].stats["ref_cache"] == "reused"  # same reference, pairs and truncation
    assert manifest.runs["rm/density"].params["density_aware"] is True

    evaluation = json.loads(kat("eval", "rm", "uniform", "density", "--json", "--threads", "1", workspace=first).stdout)
    assert [m["name"] for m in evaluation["models"]] == ["uniform", "density"]
    # The sample's preferences are learnable: with --rm-steps 20 both tiny models beat chance (0.5) well clear of
    # their 95% interval (measured: uniform 0.898 [0.817, 0.945], density 0.955 [0.889, 0.982] on 88 pairs).
    assert evaluation["heldout"]["pairs"] >= 60
    for m in evaluation["models"]:
        assert m["overall"]["accuracy"] >= 0.8 and m["overall"]["ci95"][0] > 0.5, m["overall"]

    again = kat("-q", "quickstart", "--workspace", str(second), "--rm-steps", "20", workspace=None)
    assert again.exit_code == 0, again.output
    a, b = _artifact_hashes(first), _artifact_hashes(second)
    assert a.keys() == b.keys()
    differing = sorted(p for p in a if a[p] != b[p])
    assert differing == [], f"not byte-identical across identical runs: {differing}"

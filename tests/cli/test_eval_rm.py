"""`kat eval rm`: side-by-side table, JSON, and refusals when models share no held-out set."""

from __future__ import annotations

import json

import pytest
import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with `uniform`, `density` (seed 0) and `other` (seed 1) tiny reward models."""
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    kit = rmkit
    root = tmp_path_factory.mktemp("evalws")
    ws = kit.make_workspace(root, kit.planted_pairs(100))
    small = dict(max_steps=4, max_len=64, lr=3e-3)
    run_train_rm(ws, tiny_config(**small))
    run_train_rm(ws, tiny_config(density_aware=True, **small))
    run_train_rm(ws, tiny_config(name="other", seed=1, **small))
    return root


def test_table_compares_models_side_by_side(kat, trained):
    result = kat("eval", "rm", "uniform", "density", "--threads", "1", workspace=trained)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Held-out set: ") and lines[0].endswith(" prompts (--seed 0, --val-ratio 0.2)")
    assert lines[1] == f"  uniform: uniform sampling, step 4, {trained.resolve()}/rm_checkpoints/uniform"
    assert lines[2] == f"  density: per-prompt sampling, step 4, {trained.resolve()}/rm_checkpoints/density"
    header = next(line for line in lines if "Group" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["Group", "Pairs", "uniform", "density", "Δ"]
    for row in ("overall", "src-a", "src-b", "Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"):
        assert any(line.startswith(f"│ {row} ") for line in lines), row
    data = json.loads(kat("eval", "rm", "uniform", "density", "--json", "--threads", "1", workspace=trained).stdout)
    overall = data["comparisons"][0]["overall"]
    lo, hi = overall["ci95"]
    cell = f"{overall['delta']:+.3f} ({lo:+.2f}…{hi:+.2f}) p={overall['mcnemar_p']:.2g}"
    assert next(line for line in lines if line.startswith("│ overall ")).rstrip("│ ").endswith(cell)
    assert "Δ: density − uniform; McNemar exact test; 95% percentile bootstrap over held-out prompts" in lines


def test_json_matches_the_evaluation_recorded_at_the_end_of_training(kat, trained):
    result = kat("eval", "rm", "uniform", "density", "--json", "--threads", "1", workspace=trained)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "kat.eval.rm/1"
    assert [m["name"] for m in data["models"]] == ["uniform", "density"]
    for m in data["models"]:
        meta = json.loads((trained / "rm_checkpoints" / m["name"] / "meta_000004.json").read_text())
        assert m["overall"] == meta["eval"]["overall"]
        assert m["by_quintile"] == meta["eval"]["by_quintile"]
        assert data["heldout"]["fingerprint"] == meta["heldout"]["fingerprint"]
        assert sum(q["n"] for q in m["by_quintile"]) == data["heldout"]["pairs"]
    (cmp,) = data["comparisons"]
    assert (cmp["a"], cmp["b"]) == ("uniform", "density")
    a, b = data["models"][0]["overall"], data["models"][1]["overall"]
    assert cmp["overall"]["n"] == a["n"] and cmp["overall"]["delta"] == pytest.approx(b["accuracy"] - a["accuracy"])
    assert cmp["overall"]["b_only_correct"] - cmp["overall"]["a_only_correct"] == b["correct"] - a["correct"]
    assert 0.0 <= cmp["overall"]["mcnemar_p"] <= 1.0
    assert cmp["overall"]["ci95"][0] <= cmp["overall"]["delta"] <= cmp["overall"]["ci95"][1]
    assert sorted(cmp["by_source"]) == ["src-a", "src-b"] and len(cmp["by_quintile"]) == 5
    assert [q["n"] for q in cmp["by_quintile"]] == [q["n"] for q in data["models"][0]["by_quintile"]]


def test_models_with_different_heldout_sets_are_refused(kat, trained):
    result = kat("eval", "rm", "uniform", "other", workspace=trained)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the models were split with different held-out settings (uniform: --seed 0 --val-ratio 0.2, "
        "other: --seed 1 --val-ratio 0.2), so they share no held-out set\n"
        "Hint: train them with the same --seed and --val-ratio\n"
    )


def test_unknown_model(kat, trained):
    result = kat("eval", "rm", "nope", workspace=trained)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no reward model or DPO policy 'nope'\n"
        "Hint: pass a run name from rm_checkpoints/ or dpo_checkpoints/ (e.g. uniform, dpo/density) or a checkpoint "
        "directory\n"
    )

"""`kat eval rm`: side-by-side table, JSON, and refusals when models share no held-out set."""

from __future__ import annotations

import json
import re

import pytest
import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with `uniform`, `density` (seed 0) and `other` (seed and split seed 1) tiny reward models."""
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    kit = rmkit
    root = tmp_path_factory.mktemp("evalws")
    ws = kit.make_workspace(root, kit.planted_pairs(100))
    small = dict(max_steps=4, max_len=64, lr=3e-3)
    run_train_rm(ws, tiny_config(**small))
    run_train_rm(ws, tiny_config(density_aware=True, **small))
    run_train_rm(ws, tiny_config(name="other", seed=1, split_seed=1, **small))
    return root


def test_table_compares_models_side_by_side(kat, trained):
    result = kat("eval", "rm", "uniform", "density", "--threads", "1", workspace=trained)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Held-out set: ") and lines[0].endswith(" prompts (--seed 0, --val-ratio 0.2)")
    assert lines[1] == f"  uniform: uniform sampling, step 4, {trained.resolve()}/rm_checkpoints/uniform"
    assert lines[2] == f"  density: density-aware (per-prompt) sampling, step 4, {trained.resolve()}/rm_checkpoints/density"
    header = next(line for line in lines if "Group" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == ["Group", "Pairs", "uniform", "density", "Δ"]
    for row in ("overall", "src-a", "src-b", "Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"):
        assert any(line.startswith(f"│ {row} ") for line in lines), row
    data = json.loads(kat("eval", "rm", "uniform", "density", "--json", "--threads", "1", workspace=trained).stdout)
    overall = data["comparisons"][0]["overall"]
    lo, hi = overall["ci95"]
    p = overall["mcnemar_p"]
    p_text = "1" if p >= 0.995 else f"{p:.2f}".lstrip("0")  # this tiny held-out set has no small p-values
    cell = f"{overall['delta']:+.3f} p={p_text}"
    assert next(line for line in lines if line.startswith("│ overall ")).rstrip("│ ").endswith(cell)
    note = " ".join(line for line in lines if not line.startswith(("│", "┃", "┏", "┡", "└")))
    assert (f"Δ = density − uniform on the same pairs; overall 95% paired interval {lo:+.3f}…{hi:+.3f} (bootstrap "
            "over held-out prompts), p from McNemar's exact test; every group's interval is in --json") in note
    assert f"80% power (α = .05) to detect |Δ| ≥ {overall['mdd80']:.3f} overall" in note
    assert overall["mdd80"] == pytest.approx((1.959964 + 0.841621) * overall["se"], rel=1e-4)
    quint = data["comparisons"][0]["by_quintile"]
    if quint is not None:  # Holm over the five quintiles: never below McNemar's own p
        assert all(q["mcnemar_p_holm"] >= q["mcnemar_p"] for q in quint if q["n"])


@pytest.fixture(scope="module")
def trained_on_real_sources(tmp_path_factory):
    """`uniform`, `density` (and `-b` twins) tiny reward models on pairs labelled with the three downloadable
    sources' names."""
    from katcli.data.schema import SOURCES
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    pairs = rmkit.planted_pairs(90)
    for i, pair in enumerate(pairs):
        pair["src"] = SOURCES[(i // 2) % 3]
    root = tmp_path_factory.mktemp("evalsrc")
    ws = rmkit.make_workspace(root, pairs)
    small = dict(max_steps=2, max_len=64, lr=3e-3)
    run_train_rm(ws, tiny_config(**small))
    run_train_rm(ws, tiny_config(density_aware=True, **small))
    run_train_rm(ws, tiny_config(name="uniform-b", **small))
    run_train_rm(ws, tiny_config(name="density-b", density_aware=True, **small))
    return root


def test_at_80_columns_four_models_stack_each_accuracy_over_its_interval(kat, trained_on_real_sources, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = kat("eval", "rm", "uniform", "density", "uniform-b", "density-b", "--threads", "1",
                 workspace=trained_on_real_sources)
    assert result.exit_code == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("│ ")]
    assert all(len(line) <= 80 for line in table), table
    labels = [line.split("│")[1].strip() for line in table[::2]]
    assert labels == ["overall", "hh", "uf", "se", "Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"]
    assert all(len(re.findall(r"\d\.\d{3}", line)) == 4 for line in table[::2])  # accuracies whole
    assert all(len(re.findall(r"\d\.\d\d–\d\.\d\d", line)) == 4 for line in table[1::2])  # intervals whole


def test_at_80_columns_rows_stay_whole_and_sources_get_short_labels(kat, trained_on_real_sources, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = kat("eval", "rm", "uniform", "density", "--threads", "1", workspace=trained_on_real_sources)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    table = [line for line in lines if line.startswith("│ ")]
    labels = [line.split("│")[1].strip() for line in table]
    assert labels == ["overall", "hh", "uf", "se", "Q1 commonest", "Q2", "Q3", "Q4", "Q5 rarest"]  # one line each
    assert all(len(line) <= 80 for line in table), table
    assert all(re.search(r"\d\.\d{3} \(\d\.\d\d–\d\.\d\d\)", line) for line in table)  # numbers whole
    assert "Sources: hh = hh-rlhf, uf = ultrafeedback-binarized, se = stack-exchange-preferences" in lines


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
    fp = {n: json.loads(next((trained / "rm_checkpoints" / n).glob("meta_*.json")).read_text())["heldout"]
          ["fingerprint"][:12] for n in ("uniform", "other")}
    assert fp["uniform"] != fp["other"]
    assert result.stderr == (
        "Error: the models were split with different held-out settings (uniform: split seed 0 --val-ratio 0.2 "
        f"(held-out fingerprint {fp['uniform']}), other: split seed 1 --val-ratio 0.2 (held-out fingerprint "
        f"{fp['other']})), so they share no held-out set\n"
        "Hint: train them with the same --split-seed and --val-ratio\n"
    )


def test_a_run_whose_split_seed_is_its_seed_still_evaluates(kat, trained):
    # `other` records what runs from before --split-seed record: a held-out split by its own --seed (1)
    data = json.loads(kat("eval", "rm", "other", "--json", "--threads", "1", workspace=trained).stdout)
    assert data["heldout"]["seed"] == 1 and data["models"][0]["overall"]["n"] == data["heldout"]["pairs"]


def test_unknown_model(kat, trained):
    result = kat("eval", "rm", "nope", workspace=trained)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no reward model or DPO policy 'nope'\n"
        "Hint: pass a run name from rm_checkpoints/ or dpo_checkpoints/ (e.g. uniform, dpo/density) or a checkpoint "
        "directory\n"
    )


def test_p_values_fit_the_delta_cell():
    from katcli.cli.eval import _delta_cell, _p_text

    assert [_p_text(p) for p in (1.0, 0.996, 0.75, 0.0123, 0.0042, 0.0009, 1e-300)] == [
        "1", "1", ".75", ".01", ".004", "<.001", "<.001",
    ]
    assert _delta_cell({"n": 9, "delta": -0.125, "mcnemar_p": 0.0042}) == "-0.125 p=.004"
    assert _delta_cell({"n": 9, "delta": 1.0, "mcnemar_p": 1e-9}) == "+1.000 p<.001"
    assert _delta_cell({"n": 0, "delta": None, "mcnemar_p": 1.0}) == "–"


def _copy(trained, tmp_path):
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(trained, root)
    return root


@pytest.mark.parametrize("edited", ["meta_000004.json", "tokenizer.json"])
def test_an_edited_meta_or_tokenizer_beside_the_model_is_refused_as_modified(kat, trained, tmp_path, edited):
    # The meta holds the held-out split and --max-len the evaluation uses: an edit to it used to be scored
    # silently, or refused as "held-out set differs from the one the current pairs give" (the pairs had not changed).
    from katcli.pipeline.registry import rerun_command
    from katcli.workspace import Manifest

    root = _copy(trained, tmp_path)
    f = root / "rm_checkpoints" / "density" / edited
    f.write_text(f.read_text(encoding="utf-8").replace('"val_ratio": 0.2', '"val_ratio": 0.5') + " ",
                 encoding="utf-8")
    run = Manifest.load(root / "manifest.json").runs["rm/density"]
    result = kat("eval", "rm", "uniform", "density", "--threads", "1", workspace=root)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: rm_checkpoints/density/{edited} was modified after `{run.command}` wrote it",
        f"Hint: re-run `{rerun_command(run.key, run.command)}`, or pass --force to use it as it is",
    ]
    # an edited training log is no input of the evaluation
    (root / "rm_checkpoints" / "uniform" / "metrics.jsonl").write_text("{}\n", encoding="utf-8")
    assert kat("eval", "rm", "uniform", "--threads", "1", workspace=root).exit_code == 0


def test_a_bare_name_that_only_a_dpo_run_has_is_shown_as_that_dpo_run(tmp_path):
    # With rm_checkpoints/uniform gone, `kat eval rm uniform` scored dpo_checkpoints/uniform and labelled it
    # `uniform`, the reward model's name, in the header and the table.
    from katcli.pipeline.eval_rm import resolve_checkpoint
    from katcli.workspace import Workspace

    ws = Workspace(tmp_path)
    (tmp_path / "dpo_checkpoints" / "uniform").mkdir(parents=True)
    assert resolve_checkpoint(ws, "uniform") == ("dpo/uniform", (tmp_path / "dpo_checkpoints" / "uniform").resolve())
    assert resolve_checkpoint(ws, "dpo/uniform")[0] == "dpo/uniform"
    (tmp_path / "rm_checkpoints" / "uniform").mkdir(parents=True)
    assert resolve_checkpoint(ws, "uniform")[0] == "uniform"  # the reward model's, when it has one


def test_a_policy_that_scores_no_pairs_is_named_for_what_it_is(tmp_path):
    # `kat eval rm sft/uniform` said "no reward model or DPO policy 'sft/uniform'" beside sft_checkpoints/uniform/
    from katcli.errors import KatError
    from katcli.pipeline.eval_rm import resolve_checkpoint
    from katcli.workspace import Workspace

    (tmp_path / "sft_checkpoints" / "uniform").mkdir(parents=True)
    with pytest.raises(KatError) as err:
        resolve_checkpoint(Workspace(tmp_path), "sft/uniform")
    assert err.value.message == "'sft/uniform' is a run of sft_checkpoints/, not a reward model or DPO policy"


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """Two arms of two replicates each (`uniform-s0/-s1`, `density-s0/-s1`), on one split seed (0)."""
    from katcli.pipeline.train_rm import run_train_rm, tiny_config

    root = tmp_path_factory.mktemp("armws")
    ws = rmkit.make_workspace(root, rmkit.planted_pairs(60))
    small = dict(max_steps=2, max_len=64, lr=3e-3)
    for seed in (0, 1):
        run_train_rm(ws, tiny_config(name=f"uniform-s{seed}", seed=seed, **small))
        run_train_rm(ws, tiny_config(name=f"density-s{seed}", density_aware=True, seed=seed, **small))
    return root


def test_an_arm_name_evaluates_its_replicates_with_across_seed_estimates(kat, replicated):
    args = ("eval", "rm", "uniform", "density", "--json", "--threads", "1")
    first = kat(*args, workspace=replicated)
    assert first.exit_code == 0, first.stderr
    assert kat(*args, workspace=replicated).stdout == first.stdout  # byte-identical
    data = json.loads(first.stdout)
    assert [m["name"] for m in data["models"]] == ["uniform-s0", "uniform-s1", "density-s0", "density-s1"]
    assert data["heldout"]["quintiles"] == ["q1_commonest", "q2", "q3", "q4", "q5_rarest"]
    assert len(data["heldout"]["quintile_edges"]) == 4 and data["heldout"]["quintile_edges"] == sorted(
        data["heldout"]["quintile_edges"])
    uniform, density = data["arms"]
    assert uniform["name"] == "uniform" and [r["seed"] for r in uniform["replicates"]] == [0, 1]
    assert [r["run"] for r in density["replicates"]] == ["density-s0", "density-s1"]
    across = uniform["across_seeds"]
    assert across["n_seeds"] == 2 and across["overall"]["n"] == 2 * data["heldout"]["pairs"]
    mean = sum(r["overall"]["accuracy"] for r in uniform["replicates"]) / 2
    assert across["overall"]["value"] == pytest.approx(mean, abs=1e-6)
    lo, hi = across["overall"]["ci95"]
    assert 0.0 <= lo <= mean <= hi <= 1.0 and len(across["by_quintile"]) == 5
    cmp = data["arm_comparisons"][0]
    assert (cmp["a"], cmp["b"], cmp["paired_seeds"]) == ("uniform", "density", [[0, 0], [1, 1]])
    assert {"value", "ci95", "n", "p", "mdd80"} <= set(cmp["overall"])
    assert not any(n.startswith("one training seed per model") for n in data["notes"])
    table = kat("eval", "rm", "uniform", "density", "--threads", "1", workspace=replicated).stdout
    assert "Accuracy across seeds (2/2 replicates; 95% interval over seeds and prompts)" in table
    one = json.loads(kat("eval", "rm", "uniform-s1", "--json", "--threads", "1", workspace=replicated).stdout)
    assert "arms" not in one and "one training seed per model: every interval covers held-out prompts only" in \
        " ".join(one["notes"])

"""`run_eval_policy` end to end on CPU: planted reward model, collapsed vs diverse policies, paired Δ, reproducibility.

Embeddings come from the kit's bag-of-words embedder here (MiniLM is exercised by the CLI test).
"""

from __future__ import annotations

import json
import shutil

import evalkit
import pytest
import torch
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

from katcli.errors import KatError
from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy
from katcli.pipeline.policies import resolve_policy
from katcli.workspace import Manifest

FAST = dict(prompts=20, samples=4, max_new_tokens=16, device="cpu", threads=1)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    torch.set_num_threads(1)
    return evalkit.make_eval_workspace(tmp_path_factory.mktemp("evalpolicy"))


def _run(planted, *policies, **kw):
    cfg = EvalPolicyConfig(policies=tuple(policies), **{**FAST, **kw})
    return run_eval_policy(planted["ws"], cfg, embedder=evalkit.bag_of_words_embedder()).data


def _overall(data, policy, key):
    return data["results"][policy][key]["overall"]


@pytest.mark.slow
def test_collapsed_and_diverse_policies_and_the_planted_reward_model_rank_correctly(planted):
    data = _run(planted, "maybe", "please", "random", rms=("judge",))
    assert data["schema"] == "kat.eval.policy/1" and data["baseline"] == "maybe"
    v = lambda p, k: _overall(data, p, k)["value"]  # noqa: E731
    # diversity: the constant policy is collapsed, the random one is not, by every measure
    for key in ("within/distinct-1", "within/distinct-2", "within/emb-div", "across/distinct-1",
                "across/distinct-2", "across/emb-div", "across/vendi"):
        assert v("random", key) > v("please", key) + 0.3 * abs(v("please", key)), key
    assert v("please", "within/self-bleu") > 80 and v("random", "within/self-bleu") < 30
    assert v("please", "within/distinct-1") < 0.4 and v("please", "across/vendi") < 1.5
    # quality: the reward model trained to like "please" ranks the marker policy above the anti-marker one
    assert v("please", "reward/judge") > v("maybe", "reward/judge")
    assert v("please", "win/judge") > 0.9 and v("maybe", "win/judge") == 0.5
    delta = _overall(data, "please", "reward/judge")["delta"]
    assert delta["ci95"][0] > 0  # the paired interval excludes 0
    # the same ranking holds in every density quintile, each with its equal share of prompts
    assert data["prompts"]["per_quintile"] == [4, 4, 4, 4, 4]
    for q in ("Q1", "Q5"):
        assert data["results"]["please"]["win/judge"][q]["value"] > 0.75
    # the GRPO policy's meta names `judge` as its training reward model: the output says so
    assert any("random was trained against the reward model judge" in n for n in data["notes"])


@pytest.mark.slow
def test_every_policy_sees_the_same_prompts_and_a_rerun_writes_identical_generations(planted):
    root = planted["ws"].root
    first = _run(planted, "please", "random")
    files = {p["name"]: root / p["generations"] for p in first["policies"]}
    before = {n: f.read_bytes() for n, f in files.items()}
    ids = {n: [json.loads(line)["prompt_id"] for line in b.decode().splitlines()] for n, b in before.items()}
    assert ids["please"] == ids["random"] and len(ids["please"]) == 20 * 4
    assert sorted(set(ids["please"])) == sorted(first["prompts"]["ids"])
    # Each policy's directory keeps the whole evaluation's document: what --json prints, less the wall clock,
    # with model paths relative to the workspace.
    documents = {n: (f.parent / "evaluation.json").read_bytes() for n, f in files.items()}
    assert documents["please"] == documents["random"]
    kept = json.loads(documents["please"])
    assert documents["please"] == (json.dumps(kept, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    assert set(first) - set(kept) == {"timings"}
    assert [p["path"] for p in kept["policies"]] == ["sft_checkpoints/please", "grpo_checkpoints/random"]
    assert [str(root / p["path"]) for p in kept["policies"]] == [p["path"] for p in first["policies"]]
    printed = json.loads(json.dumps(first))  # as --json prints it (tuples become lists)
    for p in printed["policies"]:
        p["path"] = kept["policies"][printed["policies"].index(p)]["path"]
        del p["tokens_per_s"]
    assert kept == {k: v for k, v in printed.items() if k != "timings"}
    second = _run(planted, "please", "random")
    assert {n: f.read_bytes() for n, f in files.items()} == before
    assert {n: (f.parent / "evaluation.json").read_bytes() for n, f in files.items()} == documents
    assert second["results"] == first["results"]
    runs = Manifest.load(planted["ws"].manifest_path).runs
    outputs = {o.path: o for o in runs["eval-policy/sft-please"].outputs}
    assert outputs["eval/policy/sft-please/generations.jsonl"].rows == 80
    assert [o.path for o in runs["eval-policy/grpo-random"].outputs] == [
        "eval/policy/grpo-random/evaluation.json", "eval/policy/grpo-random/generations.jsonl"]


@pytest.mark.slow
def test_a_policy_against_a_copy_of_itself_has_a_delta_interval_around_zero(planted, tmp_path):
    copy = tmp_path / "random-copy"
    shutil.copytree(planted["ws"].root / "grpo_checkpoints" / "random", copy)
    data = _run(planted, "random", str(copy), rms=("judge",))
    for key, groups in data["results"]["random-copy"].items():
        d = groups["overall"]["delta"]
        if d["value"] is not None:
            assert d["ci95"][0] <= 0.0 <= d["ci95"][1], key
    assert _overall(data, "random-copy", "win/judge")["value"] == 0.5


@pytest.mark.slow
def test_a_baseline_outside_the_policy_list_is_evaluated_first(planted):
    data = _run(planted, "please", baseline="maybe", rms=("judge",))
    assert [p["name"] for p in data["policies"]] == ["maybe", "please"] and data["baseline"] == "maybe"
    assert _overall(data, "please", "win/judge")["value"] > 0.9


@pytest.mark.slow
def test_run_names_are_looked_up_before_paths_and_ambiguity_is_refused(planted, tmp_path, monkeypatch):
    ws = planted["ws"]
    assert resolve_policy(ws, "please").directory == ws.abs("sft_checkpoints/please")
    assert resolve_policy(ws, "dpo/maybe").kind == "dpo"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "please").mkdir()  # a directory of the same name in the current directory loses to the run
    assert resolve_policy(ws, "please").kind == "sft"
    assert resolve_policy(ws, "./please").kind == "dir"
    shutil.copytree(ws.abs("sft_checkpoints/please"), ws.abs("models/please"))
    try:
        with pytest.raises(KatError, match=r"policy name 'please' is ambiguous: it is in sft_checkpoints/, models/"):
            resolve_policy(ws, "please")
        assert resolve_policy(ws, "models/please").kind == "models"
    finally:
        shutil.rmtree(ws.abs("models/please"))


@pytest.mark.slow
def test_policies_trained_on_different_splits_are_refused(planted, tmp_path):
    other = tmp_path / "other-split"
    tok = planted["tokenizer"]
    evalkit.write_policy(other, evalkit.random_policy(tok), tok, heldout={"seed": 1, "val_ratio": 0.2})
    with pytest.raises(KatError, match="different held-out splits"):
        _run(planted, "please", str(other))


@pytest.mark.slow
def test_a_reward_model_is_not_a_policy(planted):
    with pytest.raises(KatError, match="this is a reward model, not a policy"):
        _run(planted, "please", str(planted["ws"].abs("rm_checkpoints/judge")))


def _replicate(planted, kind, name, seed, std):
    """A replicate policy `NAME-s<seed>` whose record says which seed it was trained with."""
    directory = evalkit.policy_dir(planted["ws"].root, kind, f"{name}-s{seed}")
    evalkit.write_policy(directory, evalkit.random_policy(planted["tokenizer"], seed=seed + 1, std=std),
                         planted["tokenizer"], heldout=evalkit.HELDOUT)
    meta_file = next(directory.glob("meta_*.json"))
    meta = json.loads(meta_file.read_text())
    meta["config"] = {"seed": seed, "name": f"{name}-s{seed}", "std": std}
    meta_file.write_text(json.dumps(meta))


def test_arms_of_replicates_get_across_seed_figures_paired_by_seed(planted):
    for seed in (0, 1):
        _replicate(planted, "sft", "calm", seed, 0.2)
        _replicate(planted, "grpo", "wild", seed, 0.6)
    data = _run(planted, "sft/calm", "grpo/wild", rms=("judge",), prompts=10, samples=2, max_new_tokens=8)
    again = _run(planted, "sft/calm", "grpo/wild", rms=("judge",), prompts=10, samples=2, max_new_tokens=8)
    assert json.dumps(data["arms"]) == json.dumps(again["arms"])  # same command, same figures
    assert [p["name"] for p in data["policies"]] == ["sft/calm-s0", "sft/calm-s1", "grpo/wild-s0", "grpo/wild-s1"]
    calm, wild = data["arms"]
    assert calm["name"] == "sft/calm" and [r["run"] for r in calm["replicates"]] == ["sft/calm-s0", "sft/calm-s1"]
    across = wild["across_seeds"]
    assert across["n_seeds"] == 2
    per_seed = [data["results"][f"grpo/wild-s{s}"]["style/words"]["overall"]["value"] for s in (0, 1)]
    assert across["style/words"]["overall"]["value"] == pytest.approx(sum(per_seed) / 2, abs=1e-6)
    for key in ("across/distinct-2", "across/vendi", "within/distinct-1", "win/judge"):
        fig = across[key]["overall"]
        lo, hi = fig["ci95"]
        bound = data["groups"]["overall"] if key == "across/vendi" else 1.0
        assert lo <= fig["value"] <= hi and 0.0 <= lo and hi <= bound, key
    cmp = data["arm_comparisons"][0]
    assert (cmp["a"], cmp["b"], cmp["paired_seeds"]) == ("sft/calm", "grpo/wild", [[0, 0], [1, 1]])
    assert {"p", "mdd80"} <= set(cmp["style/words"]["overall"])
    assert all("p_holm" in cmp["across/vendi"][f"Q{k}"] for k in range(1, 6))
    assert not any(n.startswith("one training seed per model") for n in data["notes"])

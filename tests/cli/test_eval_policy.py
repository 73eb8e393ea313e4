"""`kat eval policy`: policy resolution errors, the 80-column tables, --json, and a real MiniLM run."""

from __future__ import annotations

import json

import evalkit
import pytest
import rmkit
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

from katcli.model.tokenizer import Tokenizer

ARGS = ["--prompts", "10", "--samples", "3", "--max-new-tokens", "12", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def cheap(tmp_path_factory):
    """Workspace with random policies `sft/a`, `dpo/a`, `grpo/b` and an import `models/imp` (no reward model)."""
    root = tmp_path_factory.mktemp("evalpolicycli")
    rmkit.make_workspace(root, rmkit.planted_pairs(100))
    tok = Tokenizer.load(root / "tokenizer" / "tokenizer.json")
    for kind, name, seed in (("sft", "a", 1), ("dpo", "a", 2), ("grpo", "b", 3)):
        evalkit.write_policy(evalkit.policy_dir(root, kind, name), evalkit.random_policy(tok, seed), tok,
                             heldout=evalkit.HELDOUT)
    # a models/ import: tokenizer under tokenizer/, no kind and no split in its meta
    evalkit.write_policy(evalkit.policy_dir(root, "models", "imp"), evalkit.random_policy(tok, 4), tok,
                         layout="models", kind=None)
    return root


@pytest.fixture
def bow(monkeypatch):
    """Replace the MiniLM loader by the kit's bag-of-words embedder (MiniLM itself is the slow test's)."""
    import katcli.pipeline.eval_policy as mod

    monkeypatch.setattr(mod, "default_embedder", lambda device: (evalkit.bag_of_words_embedder(), {"model": "bow"}))


def test_an_ambiguous_name_asks_for_kind_slash_name(kat, cheap):
    result = kat("eval", "policy", "a", *ARGS, workspace=cheap)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: policy name 'a' is ambiguous: it is in sft_checkpoints/, dpo_checkpoints/",
        "Hint: write it as KIND/NAME: sft/a or dpo/a",
    ]


def test_an_unknown_policy_names_where_it_was_looked_for(kat, cheap):
    result = kat("eval", "policy", "nope", *ARGS, workspace=cheap)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: no policy 'nope'"
    assert "sft_checkpoints/, dpo_checkpoints/, grpo_checkpoints/ or models/" in result.stderr


def test_bad_flags_name_the_flag(kat, cheap):
    result = kat("eval", "policy", "sft/a", "--samples", "0", workspace=cheap)
    assert result.exit_code == 1 and "Error: --samples must be at least 1" in result.stderr
    result = kat("eval", "policy", "sft/a", "--top-p", "1.5", workspace=cheap)
    assert result.exit_code == 1 and "Error: --top-p must be in (0, 1]" in result.stderr


def test_tables_fit_80_columns_and_json_carries_the_schema(kat, cheap, bow, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = kat("eval", "policy", "sft/a", "grpo/b", "imp", *ARGS, workspace=cheap)
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    wide = [ln for ln in out.splitlines() if len(ln) > 80 and not ln.startswith("Note: ")]
    assert not wide
    for title in ("Diversity within a prompt", "Diversity across prompts", "Style"):
        assert title in out
    assert "overall (10)" in out and "Q5 rarest (2)" in out and "Δ grpo/b" in out and "Δ imp" in out
    assert "sft/a (baseline): step 10" in out
    assert "Note: no --rm given: no quality measures" in out
    # two policies: side by side, with a Δ column
    two = kat("eval", "policy", "grpo/b", "imp", *ARGS, workspace=cheap).stdout
    assert not [ln for ln in two.splitlines() if len(ln) > 80 and not ln.startswith("Note: ")]
    header = next(ln for ln in two.splitlines() if "Measure / group" in ln)
    assert [c.strip() for c in header.split("┃")[1:5]] == ["Measure / group", "grpo/b", "imp", "Δ imp"]
    assert "  Q5 rarest (2)" in two and "s-BLEU" in two
    result = kat("eval", "policy", "sft/a", "grpo/b", "imp", *ARGS, "--json", workspace=cheap)
    data = json.loads(result.stdout)
    assert data["schema"] == "kat.eval.policy/1"
    assert [p["name"] for p in data["policies"]] == ["sft/a", "grpo/b", "imp"]
    assert data["heldout"] == {**data["heldout"], "seed": 0, "val_ratio": 0.2, "from": "policy metas"}
    assert set(data["results"]["grpo/b"]) == {m["key"] for m in data["measures"]}
    cell = data["results"]["grpo/b"]["within/distinct-1"]["Q1"]
    assert set(cell) == {"value", "ci95", "n", "delta"} and cell["n"] == 2
    assert data["results"]["sft/a"]["within/distinct-1"]["overall"]["delta"] is None  # the baseline itself
    assert (cheap / "eval/policy/models-imp/generations.jsonl").is_file()
    status = kat("status", "--json", workspace=cheap)
    keys = {s["key"]: s["state"] for s in json.loads(status.stdout)["stages"]}
    assert keys["eval-policy/grpo-b"] == "ok"


@pytest.mark.slow
def test_minilm_run_ranks_a_collapsed_policy_below_a_diverse_one(kat, cheap):
    tok = Tokenizer.load(cheap / "tokenizer" / "tokenizer.json")
    held = evalkit.heldout_prompts(rmkit.planted_pairs(100), **evalkit.HELDOUT)
    evalkit.write_policy(evalkit.policy_dir(cheap, "sft", "same"), evalkit.constant_policy(tok, held[:8], "the same"),
                         tok, heldout=evalkit.HELDOUT)
    result = kat("eval", "policy", "same", "grpo/b", *ARGS, "--json", workspace=cheap)
    # (policies are named as given: "grpo/b")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["embedding_model"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    r = data["results"]
    for key in ("within/emb-div", "across/emb-div", "across/vendi", "within/distinct-2"):
        assert r["grpo/b"][key]["overall"]["value"] > r["same"][key]["overall"]["value"], key
        assert r["grpo/b"][key]["overall"]["delta"]["ci95"][0] > 0, key  # the paired interval excludes 0
    assert r["same"]["within/emb-div"]["overall"]["value"] < 0.05
    assert r["same"]["across/vendi"]["overall"]["value"] < 1.5


def test_without_density_weights_the_draw_is_uniform_and_the_output_says_so(kat, tmp_path, bow):
    root = tmp_path / "ws"
    pairs = rmkit.planted_pairs(60)
    rmkit.make_workspace(root, pairs, with_weights=False)
    tok = Tokenizer.load(root / "tokenizer" / "tokenizer.json")
    evalkit.write_policy(root / "elsewhere", evalkit.random_policy(tok), tok, kind=None)  # no split recorded
    result = kat("eval", "policy", str(root / "elsewhere"), *ARGS, "--seed", "3", "--json", workspace=root)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["prompts"]["stratified"] is False and data["prompts"]["per_quintile"] is None
    assert data["heldout"]["seed"] == 3 and data["heldout"]["val_ratio"] == 0.05
    assert "Q1" not in data["groups"] and data["policies"][0]["kind"] == "dir"
    assert "prompts drawn uniformly (seeded), not stratified by density quintile" in data["notes"]
    assert any(n.startswith("no density weights in the workspace") for n in data["notes"])
    assert any(n.startswith("no policy records its training split") for n in data["notes"])

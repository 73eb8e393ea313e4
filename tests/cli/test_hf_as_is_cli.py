"""`hf:NAME|DIR` as `--rm`, `--ref` and a model of `kat eval rm` on the command line: exact errors, exit code 1."""

from __future__ import annotations

import json
import shutil

import pytest
import rmkit
from hfkit import build_classifier, build_model, train_tokenizer
from modelkit import one_torch_thread  # noqa: F401  (autouse fixture: tiny models run on one thread)

FAST = ["--max-steps", "1", "--max-len", "64", "--val-ratio", "0.2", "--device", "cpu", "--threads", "1"]
GRPO = [*FAST, "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4", "--beta", "0.1"]
CAUSAL_HINT = ("Hint: a causal LM is a reward model only against a reference (β·log π/π_ref): train it with `kat "
               "train dpo --init hf:{d}` and evaluate that run (dpo/NAME), or pass an AutoModelForSequenceClassification "
               "with num_labels=1")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_as_is_cli")
    pairs = rmkit.planted_pairs(30)
    dec, enc = train_tokenizer(pairs, encoder=False), train_tokenizer(pairs, encoder=True)
    out = {
        "pairs": pairs,
        "llama": build_model("llama", dec, root / "llama"),
        "small": build_model("llama", train_tokenizer(pairs[:6], encoder=False), root / "small"),
        "rm": build_classifier("bert", enc, root / "rm"),
        "two": build_classifier("bert", enc, root / "two", num_labels=2),
    }
    pickled = shutil.copytree(out["rm"], root / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    remote = shutil.copytree(out["rm"], root / "remote")
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "modeling_x.XForSequenceClassification"}
    (remote / "config.json").write_text(json.dumps(cfg))
    return {**out, "pickled": pickled, "remote": remote}


def _error(result) -> list[str]:
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[-2:]


def test_eval_rm_refuses_a_causal_lm_and_a_head_with_two_labels(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    d = models["llama"]
    assert _error(kat("eval", "rm", f"hf:{d}")) == [
        f"Error: hf:{d} is not a reward model: its config names LlamaForCausalLM, not a sequence-classification head "
        f"({d}/config.json)",
        CAUSAL_HINT.format(d=d),
    ]
    two = models["two"]
    assert _error(kat("eval", "rm", f"hf:{two}")) == [
        f"Error: hf:{two} has a classification head with 2 labels; a reward model gives one score (num_labels=1) "
        f"({two}/config.json)",
        f"Hint: pass a reward model with one output, or train one from this model: kat train rm --init hf:{two}",
    ]


def test_pickles_and_remote_code_are_refused_as_for_init(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    p, r = models["pickled"], models["remote"]
    assert _error(kat("eval", "rm", f"hf:{p}")) == [
        f"Error: the model's weights are .bin pickles; kat loads safetensors only ({p})",
        "Hint: convert once: AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)",
    ]
    assert _error(kat("eval", "policy", f"hf:{models['llama']}", "--rm", f"hf:{r}")) == [
        "Error: this model needs its own Python code (auto_map in config.json), which kat does not run by default "
        f"({r}/config.json)",
        "Hint: read that code, then pass --trust-remote-code (it is recorded with the run)",
    ]


def test_an_unknown_hub_reward_model_offline_says_where_it_looked(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    first, hint = _error(kat("eval", "policy", f"hf:{models['llama']}", "--rm", "hf:nobody/judge"))
    assert first.startswith("Error: cannot find Hugging Face model 'nobody/judge': not in the Hugging Face cache ")
    assert first.endswith("; hub skipped (HF_HUB_OFFLINE is set)")
    assert hint == ("Hint: fetch it once where the hub is reachable (`hf download nobody/judge`, with the same "
                    "HF_HOME), or pass a local save_pretrained directory as hf:DIR")


def test_train_grpo_refuses_a_causal_lm_as_rm_and_an_hf_ref_for_kat_s_gpt(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    d = models["llama"]
    assert _error(kat("train", "grpo", "--init", f"hf:{d}", "--rm", f"hf:{d}", *GRPO)) == [
        f"Error: --rm hf:{d} is not a reward model: its config names LlamaForCausalLM, not a sequence-classification "
        f"head ({d}/config.json)",
        "Hint: pass an AutoModelForSequenceClassification with num_labels=1 (e.g. an OpenAssistant DeBERTa reward "
        f"model), or a run of `kat train rm` (--init hf:{d} trains one from this model)",
    ]
    assert _error(kat("train", "grpo", "--depth", "1", "--rm", f"hf:{models['rm']}", "--ref", f"hf:{d}", *GRPO)) == [
        f"Error: --ref hf:{d} is a Hugging Face model but the policy is kat's GPT with kat's tokenizer ({d})",
        "Hint: pass a kat policy as --ref (one with the policy's tokenizer), or start the policy from a Hugging Face "
        f"model with this one's tokenizer (e.g. --init hf:{d})",
    ]


def test_train_dpo_refuses_an_hf_reference_with_another_vocabulary(kat, ws_dir, models):
    from transformers import AutoTokenizer

    rmkit.make_workspace(ws_dir, models["pairs"], with_weights=False)
    d, small = models["llama"], models["small"]
    mine, theirs = AutoTokenizer.from_pretrained(str(d)).get_vocab(), AutoTokenizer.from_pretrained(str(small)).get_vocab()
    moved = sum(1 for t, i in mine.items() if theirs.get(t) != i)
    assert 0 < moved < len(mine)
    assert _error(kat("train", "dpo", "--init", f"hf:{d}", "--ref", f"hf:{small}", *FAST)) == [
        f"Error: --ref hf:{small} has another vocabulary than the policy: {moved:,} of the policy's {len(mine):,} "
        f"tokens have another id or none in the reference's {len(theirs):,} ({small})",
        "Hint: the reference's log-probs are compared token by token with the policy's: pass a --ref that shares the "
        "policy's tokenizer (e.g. the --init model, the default)",
    ]
    assert _error(kat("train", "dpo", "--init", f"hf:{d}", "--ref", f"hf:{models['rm']}", *FAST))[0] == (
        f"Error: --ref hf:{models['rm']} is a reward model, not a policy ({models['rm']}/config.json)"
    )


@pytest.mark.parametrize("command,flag", [("train grpo", "--rm"), ("train grpo", "--ref"), ("train dpo", "--ref"),
                                          ("eval policy", "--rm")])
def test_help_says_the_flag_takes_hf_models(kat, command, flag):
    out = kat(*command.split(), "--help", workspace=None).stdout
    line = next(x for x in out.splitlines() if x.lstrip("│ ").startswith(f"{flag} "))  # the option's own row
    assert "hf:NAME" in line


def test_eval_rm_prints_an_hf_reward_model_as_it_is_and_its_source_in_json(kat, ws_dir, models):
    rmkit.make_workspace(ws_dir, rmkit.planted_pairs(120), with_weights=False)
    d = models["rm"]
    result = kat("eval", "rm", f"hf:{d}", "--device", "cpu", "--threads", "1")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"  hf:{d}: Hugging Face model as it is (local, {d})" in result.stdout.splitlines()
    assert "Note: no model records a training split: held-out pairs from kat's default --seed 0 --val-ratio 0.05" in (
        result.stdout)
    (model,) = json.loads(kat("eval", "rm", f"hf:{d}", "--device", "cpu", "--json").stdout)["models"]
    assert model["name"] == f"hf:{d}" and model["hf"]["files_sha256"]["config.json"]
    assert model["overall"]["n"] == 6

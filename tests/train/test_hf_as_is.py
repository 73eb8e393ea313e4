"""Hugging Face models used as they are (no kat run): `--rm hf:`, `--ref hf:` and `kat eval rm hf:`.

Tiny random models (hfkit): sequence classifiers (Llama-style decoder, BERT-style encoder) as off-the-shelf reward
models, and two Llama-style causal LMs with the same tokenizer (the policy's start and another reference). What kat
reports must equal plain `transformers` on the same texts: rewards to 1e-5 absolute (fp32 CPU, one unpadded row at
a time in plain transformers, kat's padded batches), DPO's cached reference log-probs to 1e-5 absolute.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hfkit import FAST_TRAINING, build_classifier, build_model, plain_rewards, train_tokenizer
from rmkit import make_workspace, planted_pairs

from katcli.errors import KatError
from katcli.workspace import Manifest
from katcli.workspace.hashing import sha256_file

TOL = 1e-5
COMMON = {**FAST_TRAINING, "max_steps": 1}


@pytest.fixture(scope="session")
def as_is(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("hf_as_is")
    pairs = planted_pairs(120)  # 6 held-out pairs at --val-ratio 0.05, two of them multi-turn
    dec, enc = (train_tokenizer(pairs, encoder=e) for e in (False, True))
    return {
        "pairs": pairs,
        "llama": build_model("llama", dec, root / "llama"),
        "other": build_model("llama", dec, root / "other", seed=7),  # the same tokenizer, other weights
        "llama-rm": build_classifier("llama", dec, root / "llama-rm"),
        "bert-rm": build_classifier("bert", enc, root / "bert-rm"),
        "two-labels": build_classifier("bert", enc, root / "two-labels", num_labels=2),
        "root": root,
    }


def _ws(tmp_path, as_is, n=None):
    pairs = as_is["pairs"] if n is None else as_is["pairs"][: n * 2]
    return make_workspace(tmp_path / "ws", pairs, with_weights=False)


def _held(pairs, seed, val_ratio):
    from katcli.train.split import split_pairs

    split = split_pairs([p["prefix_id"] for p in pairs], seed=seed, val_ratio=val_ratio)
    return [pairs[i] for i in split.heldout]


@pytest.mark.parametrize("kind", ["llama-rm", "bert-rm"])
def test_eval_rm_scores_an_hf_classifier_as_plain_transformers_does(tmp_path, as_is, kind):
    from katcli.pipeline.eval_rm import run_eval_rm

    ws = _ws(tmp_path, as_is)
    d = as_is[kind]
    ev = run_eval_rm(ws, [f"hf:{d}"], device="cpu", threads=1)
    assert "no model records a training split: held-out pairs from kat's default --seed 0 --val-ratio 0.05" in ev.notes
    held = _held(as_is["pairs"], 0, 0.05)
    assert any(len(p["prefix"]["messages"]) > 1 for p in held)  # multi-turn conversations are rendered too
    encoder = kind == "bert-rm"
    chosen = plain_rewards(d, [(p["prefix"]["messages"], p["chosen"]) for p in held], encoder=encoder)
    rejected = plain_rewards(d, [(p["prefix"]["messages"], p["rejected"]) for p in held], encoder=encoder)
    (model,) = ev.models
    want = np.asarray(chosen) - np.asarray(rejected)
    assert np.abs(want).max() > 100 * TOL  # the head is not (near) zero: the comparison can fail
    np.testing.assert_allclose(model.report.margins, want, atol=TOL, rtol=0)
    out = model.to_json()
    assert out["hf"]["source"] == "local" and out["hf"]["location"] == str(d)
    assert out["hf"]["files_sha256"]["model.safetensors"] == sha256_file(Path(d) / "model.safetensors")


def test_an_hf_classifier_is_evaluated_beside_a_kat_reward_model_on_its_held_out_pairs(tmp_path, as_is):
    from katcli.pipeline.eval_rm import run_eval_rm
    from katcli.pipeline.train_rm import TrainRMConfig, run_train_rm

    ws = _ws(tmp_path, as_is, n=30)
    run_train_rm(ws, TrainRMConfig(init=f"hf:{as_is['llama']}", **{**COMMON, "max_steps": 2}))
    ev = run_eval_rm(ws, ["rm/uniform", f"hf:{as_is['bert-rm']}"], device="cpu", threads=1)
    assert (ev.heldout["seed"], ev.heldout["val_ratio"]) == (0, 0.2)  # the kat model's split
    kat, hf = ev.models
    assert kat.report.overall.n == hf.report.overall.n == ev.heldout["pairs"]
    assert set(kat.to_json()) | {"hf"} == set(hf.to_json())  # the same columns, plus where it came from
    held = _held(as_is["pairs"][:60], 0, 0.2)
    chosen = plain_rewards(as_is["bert-rm"], [(p["prefix"]["messages"], p["chosen"]) for p in held], encoder=True)
    rejected = plain_rewards(as_is["bert-rm"], [(p["prefix"]["messages"], p["rejected"]) for p in held], encoder=True)
    np.testing.assert_allclose(hf.report.margins, np.subtract(chosen, rejected), atol=TOL, rtol=0)
    assert ev.comparisons[0]["a"] == "rm/uniform" and ev.comparisons[0]["b"] == f"hf:{as_is['bert-rm']}"


def test_eval_rm_refuses_a_causal_lm_and_a_head_with_two_labels(tmp_path, as_is):
    from katcli.pipeline.eval_rm import run_eval_rm

    ws = _ws(tmp_path, as_is)
    lm = as_is["llama"]
    with pytest.raises(KatError) as err:
        run_eval_rm(ws, [f"hf:{lm}"], device="cpu")
    assert err.value.message == (f"hf:{lm} is not a reward model: its config names LlamaForCausalLM, not a "
                                 "sequence-classification head")
    assert err.value.file == str(Path(lm) / "config.json")
    assert err.value.hint.startswith("a causal LM is a reward model only against a reference (β·log π/π_ref): "
                                     f"train it with `kat train dpo --init hf:{lm}`")
    with pytest.raises(KatError) as err:
        run_eval_rm(ws, [f"hf:{as_is['two-labels']}"], device="cpu")
    assert err.value.message == (f"hf:{as_is['two-labels']} has a classification head with 2 labels; a reward "
                                 "model gives one score (num_labels=1)")


def _capture_scores(monkeypatch):
    """Every (prompts, replies, rewards) the one reply scorer returns during a run."""
    from katcli.train import rm_scoring

    seen = []
    real = rm_scoring.RewardScorer.__call__

    def call(self, prompts, replies, **kw):
        out = real(self, prompts, replies, **kw)
        seen.append((list(prompts), list(replies), np.array(out)))
        return out

    monkeypatch.setattr(rm_scoring.RewardScorer, "__call__", call)
    return seen


def test_grpo_with_an_hf_reward_model_and_an_hf_reference_as_they_are(tmp_path, as_is, monkeypatch):
    from katcli.pipeline.train_grpo import run_train_grpo, tiny_grpo_config

    ws = _ws(tmp_path, as_is, n=30)
    seen = _capture_scores(monkeypatch)
    rm, ref = f"hf:{as_is['llama-rm']}", f"hf:{as_is['other']}"
    res = run_train_grpo(ws, tiny_grpo_config(
        init=f"hf:{as_is['llama']}", rm=rm, ref=ref, max_steps=1, batch_size=2, group_size=4, max_new_tokens=5,
        beta=0.1, eval_prompts=2, eval_samples=1, lr=1e-3,
    ))
    assert res.step == 1
    # The rollout rewards kat trained on are plain transformers' rewards of the same texts.
    prompts, replies, rewards = seen[0]
    assert len(replies) == 8 and len(set(replies)) > 1
    plain = plain_rewards(as_is["llama-rm"], list(zip(prompts, replies)), encoder=False)
    np.testing.assert_allclose(rewards, plain, atol=TOL, rtol=0)
    # The KL term is against the other model: not zero at the first step, as it is against the starting model.
    line = json.loads((res.directory / "metrics.jsonl").read_text().splitlines()[0])
    assert line["kl"] > 1e-3
    meta = json.loads(next(res.directory.glob("meta_*.json")).read_text())
    assert meta["reward_model"]["name"] == rm and meta["reward_model"]["hf"]["requested"] == rm
    shas = meta["reward_model"]["hf"]["files_sha256"]
    assert shas["model.safetensors"] == sha256_file(Path(as_is["llama-rm"]) / "model.safetensors")
    assert meta["reference"]["hf"]["location"] == str(as_is["other"])
    inputs = {r.path: r for r in Manifest.load(ws.manifest_path).runs["grpo/uniform"].inputs}
    for d in (as_is["llama-rm"], as_is["other"]):
        rec = inputs[str(Path(d) / "model.safetensors")]
        assert rec.external and rec.sha256 == sha256_file(Path(d) / "model.safetensors")


def _plain_reply_logps(directory, enc):
    """Summed reply log-probs of every encoded pair under a plain `AutoModelForCausalLM`, row by row."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(directory)).eval()
    out = np.zeros((len(enc), 2))
    with torch.no_grad():
        for i in range(len(enc)):
            start = int(enc.prompt_len[i])
            for j in range(2):
                ids = torch.tensor(enc.sequence(i, j), dtype=torch.long)[None]
                lp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
                out[i, j] = lp.gather(-1, ids[0, 1:, None]).squeeze(-1)[start - 1:].sum().item()
    return out


def test_dpo_reference_log_probs_are_the_hf_reference_models(tmp_path, as_is):
    from katcli.model.hf import load_tokenizer
    from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config
    from katcli.train.inputs import read_pairs
    from katcli.train.ref_cache import RefCacheKey, load_ref_logps
    from katcli.train.sequences import encode_pairs
    from katcli.workspace import paths as P

    ws = _ws(tmp_path, as_is, n=20)
    other = Path(as_is["other"])
    res = run_train_dpo(ws, tiny_dpo_config(init=f"hf:{as_is['llama']}", ref=f"hf:{other}", **COMMON))
    meta = json.loads(next(res.directory.glob("meta_*.json")).read_text())
    assert meta["reference"]["is_init"] is False and meta["reference"]["hf"]["location"] == str(other)
    key = RefCacheKey(**meta["ref_cache"]["key"])
    assert key.reference_sha256 == sha256_file(other / "model.safetensors")
    cached = load_ref_logps(res.directory, key).logps
    tok = load_tokenizer(Path(as_is["llama"]), encoder=False, chat_template=None, trust_remote_code=False)
    pairs = read_pairs(ws.abs(P.PAIRS))
    enc = encode_pairs(tok, [(p.messages, p.chosen, p.rejected) for p in pairs], max_len=64, max_response_len=32)
    want = _plain_reply_logps(other, enc)
    np.testing.assert_allclose(cached.chosen, want[:, 0], atol=TOL, rtol=0)
    np.testing.assert_allclose(cached.rejected, want[:, 1], atol=TOL, rtol=0)
    start = _plain_reply_logps(as_is["llama"], enc)  # planted: the starting model's numbers are not these
    assert np.abs(start[:, 0] - cached.chosen).max() > 1e-2

    # `kat eval rm dpo/NAME` without the cache recomputes the held-out numbers from the recorded hf: reference.
    from katcli.pipeline.eval_rm import run_eval_rm

    with_cache = run_eval_rm(ws, ["dpo/uniform"], device="cpu", threads=1)
    for f in (res.directory / "ref_logps.npy", res.directory / "ref_logps.json"):
        f.unlink()
    without = run_eval_rm(ws, ["dpo/uniform"], device="cpu", threads=1)
    assert any(n.startswith(f"dpo/uniform: recomputed the held-out reference log-probs from {other}") for n in
               without.notes)
    np.testing.assert_allclose(without.models[0].report.margins, with_cache.models[0].report.margins, atol=TOL)


def test_a_reference_with_another_vocabulary_or_a_reward_head_is_refused(tmp_path, as_is):
    from katcli.pipeline.train_dpo import run_train_dpo, tiny_dpo_config

    ws = _ws(tmp_path, as_is, n=20)
    small = build_model("llama", train_tokenizer(as_is["pairs"][:6], encoder=False), tmp_path / "small")
    init = f"hf:{as_is['llama']}"
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(init=init, ref=f"hf:{small}", **COMMON))
    assert err.value.message.startswith(f"--ref hf:{small} has another vocabulary than the policy: ")
    assert "tokens have another id or none in the reference's" in err.value.message
    assert err.value.hint == ("the reference's log-probs are compared token by token with the policy's: pass a --ref "
                              "that shares the policy's tokenizer (e.g. the --init model, the default)")
    with pytest.raises(KatError) as err:
        run_train_dpo(ws, tiny_dpo_config(init=init, ref=f"hf:{as_is['llama-rm']}", **COMMON))
    assert err.value.message == f"--ref hf:{as_is['llama-rm']} is a reward model, not a policy"


def test_eval_policy_scores_replies_with_an_hf_reward_model_as_plain_transformers_does(tmp_path, as_is):
    import evalkit

    from katcli.pipeline.eval_policy import EvalPolicyConfig, run_eval_policy

    ws = _ws(tmp_path, as_is)
    rm = f"hf:{as_is['bert-rm']}"
    cfg = EvalPolicyConfig(policies=(f"hf:{as_is['llama']}",), rms=(rm,), prompts=3, samples=2, max_new_tokens=6,
                           device="cpu", threads=1)
    data = run_eval_policy(ws, cfg, embedder=evalkit.bag_of_words_embedder()).data
    assert data["reward_models"][0]["hf"]["location"] == str(as_is["bert-rm"])
    assert f"--rm {rm} is a Hugging Face model as it is: kat cannot tell whether it was trained on these prompts" in (
        data["notes"])
    rows = [json.loads(x) for x in ws.abs(data["policies"][0]["generations"]).read_text().splitlines()]
    messages = {p["prefix_id"]: p["prefix"]["messages"] for p in as_is["pairs"]}
    plain = plain_rewards(as_is["bert-rm"], [(messages[r["prompt_id"]], r["text"]) for r in rows], encoder=True)
    np.testing.assert_allclose([r["rewards"][rm] for r in rows], plain, atol=TOL, rtol=0)  # written to 6 decimals
    rec = Manifest.load(ws.manifest_path).runs[f"eval-policy/{data['policies'][0]['generations'].split('/')[-2]}"]
    weights = str(Path(as_is["bert-rm"]) / "model.safetensors")
    assert any(r.path == weights and r.external for r in rec.inputs)
